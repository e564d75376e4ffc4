# frozen_string_literal: true

module Igniter
  module Ledger
    # The ledger. In memory (`LedgerStore.new`) or file-backed (`LedgerStore.open(path)`).
    # Safe to share between Ruby threads.
    #
    # Every method here is a thin keyword-argument wrapper over a native method; the
    # semantics live in the Rust core.
    class LedgerStore
      # The "not given" default of `expected:` (nil means "must not exist yet").
      UNSET = Object.new.freeze

      # How many values #read keeps ready (deep-frozen Ruby objects, by fact id) unless
      # `read_cache:` says otherwise. Facts never change, so cached values never go stale.
      DEFAULT_READ_CACHE = 10_000

      # How many Fact handles #history_partition keeps ready (in whole slices) unless
      # `partition_cache:` says otherwise: a small Ruby object each (plus its value once
      # read through it); the oldest slices go first.
      DEFAULT_PARTITION_CACHE = 100_000

      class << self
        # LedgerStore.new                                   in memory
        # LedgerStore.new(backend: FileBackend.new(path))   file-backed (see .open)
        # read_cache: entries of the read cache (0 disables it); `lru_cap:` is the 0.5.x
        # name of the same bound. partition_cache: Fact handles kept for repeated
        # #history_partition calls (0 disables it).
        def new(backend: nil, durability: nil, recover: nil, read_cache: nil, lru_cap: nil, partition_cache: nil,
                changefeed: nil)
          cache = cache_entries(read_cache, lru_cap)
          slices = partition_handles(partition_cache)
          case backend
          when nil, :memory
            raise ArgumentError, "durability: needs a file-backed store" if durability

            _memory(self, cache, slices).__send__(:attach_changefeed, changefeed)
          when FileBackend
            open(backend.path, durability: durability || backend.durability,
                               recover: recover.nil? ? backend.recover : recover, read_cache: cache,
                               partition_cache: slices, changefeed: changefeed)
          else
            raise ArgumentError,
                  "backend: must be nil (in memory) or an Igniter::Ledger::FileBackend, got #{backend.class}"
          end
        end

        # Opens (or creates) the ledger whose WAL is at `path`; the snapshot is
        # `path + ".snap"`. durability: :fsync (default) | :flush | :none.
        # recover: true moves mid-log damage aside (to `path.corrupt-<offset>`) instead of
        # raising CorruptionError. read_cache:, partition_cache: as for .new. With a
        # block, yields the store and closes it after.
        # changefeed: a ChangefeedBuffer that receives every commit (see changefeed.rb).
        def open(path, durability: :fsync, recover: false, read_cache: nil, lru_cap: nil, partition_cache: nil,
                 changefeed: nil)
          path = path.to_path if path.respond_to?(:to_path)
          raise TypeError, "path must be a String or Pathname, got #{path.class}" unless path.is_a?(String)
          raise ArgumentError, "path must not contain a NUL byte: #{path.inspect}" if path.include?("\0")

          store = _open(self, path, durability.to_s, recover ? true : false, cache_entries(read_cache, lru_cap),
                        partition_handles(partition_cache))
          begin
            store.__send__(:attach_changefeed, changefeed)
          rescue StandardError
            store.close
            raise
          end
          return store unless block_given?

          begin
            yield store
          ensure
            store.close
          end
        end

        def memory
          new
        end

        private

        def cache_entries(read_cache, lru_cap)
          n = read_cache.nil? ? (lru_cap.nil? ? DEFAULT_READ_CACHE : lru_cap) : read_cache
          raise ArgumentError, "read_cache: must be a non-negative Integer, got #{n.inspect}" unless n.is_a?(Integer) && n >= 0

          n
        end

        def partition_handles(partition_cache)
          n = partition_cache.nil? ? DEFAULT_PARTITION_CACHE : partition_cache
          raise ArgumentError, "partition_cache: must be a non-negative Integer, got #{n.inspect}" unless n.is_a?(Integer) && n >= 0

          n
        end
      end
      private_class_method :_memory, :_open

      # Writes `value` to (store, key); returns the new Fact. Its causation defaults to the
      # previous fact of the key. `expected:` (a fact id or Fact; nil or :none for "the key
      # must not exist") makes the write conditional: a ConflictError, with nothing
      # written, when the latest fact of the key is another one.
      def write(store:, key:, value:, schema_version: 1, causation: nil, valid_time: nil, term: nil,
                producer: nil, derivation: nil, expected: UNSET)
        _write(store, key, value, schema_version, causation,
               term.nil? ? valid_time : Ledger.__send__(:merge_valid_time, valid_time, term), producer, derivation,
               UNSET.equal?(expected) ? false : expected)
      end

      # Appends `event` to a history under a fresh UUID key; returns the Fact.
      # `partition_key:` names the event field the history is partitioned by (optional:
      # history_partition answers correctly either way).
      def append(history:, event:, partition_key: nil, schema_version: 1, causation: nil,
                 valid_time: nil, term: nil, producer: nil, derivation: nil)
        _append(history, event, partition_key, schema_version, causation,
                term.nil? ? valid_time : Ledger.__send__(:merge_valid_time, valid_time, term), producer, derivation)
      end

      # Commits the writes and appends queued in the block atomically; returns their
      # facts in order. If the block raises, nothing is written.
      def transaction
        raise ArgumentError, "transaction needs a block" unless block_given?

        tx = Transaction.new
        yield tx
        return [] if tx.empty?

        _commit(tx.operations)
      end

      # Commits several operations atomically: each a Hash with the keywords of #write
      # (store:, key:, value:, ...) or of #append (history:, event:, ...). Returns the facts.
      def write_batch(operations)
        transaction do |tx|
          operations.each_with_index do |op, i|
            raise TypeError, "write_batch operation #{i + 1} is not a Hash" unless op.is_a?(Hash)

            op.key?(:history) ? tx.append(**op) : tx.write(**op)
          end
        end
      end

      # The value of (store, key) — coerced, deep-frozen — or nil.
      # as_of: only facts with transaction_time <= as_of.
      # valid_at: bitemporal — the fact with the greatest valid_time <= valid_at (facts
      # without a valid time count from their transaction time).
      def read(store:, key:, as_of: nil, valid_at: nil)
        _read(store, key, as_of, valid_at)
      end

      # Like #read, but answers the Fact (or CoercedFact), or nil.
      def read_fact(store:, key:, as_of: nil, valid_at: nil)
        _read_fact(store, key, as_of, valid_at)
      end

      # #read as of transaction time `at`.
      def time_travel(store:, key:, at:)
        _read(store, key, at, nil)
      end

      # The latest fact of every key whose value matches the scope's filters, ordered by
      # key. Raises UnknownScopeError (an ArgumentError) for an unregistered scope.
      def query(store:, scope:, as_of: nil)
        _query(store, scope, as_of)
      end

      # Registers an AccessPath; returns it.
      def register_path(path)
        raise TypeError, "register_path needs an Igniter::Ledger::AccessPath, got #{path.class}" unless path.is_a?(AccessPath)

        _register_path(path.store, path.scope, path.filters, path.lookup, path.cache_ttl, path.consumers)
        path
      end
      alias register_access_path register_path

      # Registers a read-path transform for `store`: `{ |value, schema_version| new_value }`
      # (or any callable). Raw facts never change; facts whose value it changes are read
      # back as CoercedFact. The block gets a mutable copy of the value. An exception it
      # raises propagates to the reader.
      def register_coercion(store, callable = nil, &block)
        callable ||= block
        raise ArgumentError, "register_coercion needs a block or a callable" unless callable

        _register_coercion(store, callable)
        self
      end

      # Facts of a store (or one key) in commit order; since: >=, as_of: <=.
      def history(store:, key: nil, since: nil, as_of: nil)
        _history(store, key, since, as_of)
      end

      # Facts of a store whose value has `partition_key => partition_value`, in commit
      # order. O(slice) after the first call for a (store, partition_key).
      #
      # Without since:/as_of:, the Fact objects of a slice are kept (see
      # `partition_cache:`) and handed out again by later calls while the slice has not
      # changed — only facts added since get new objects, and the Fact an `append` with
      # `partition_key:` returned is itself filed into its slice — so repeated calls build
      # no new Facts and a value read once through a Fact stays converted. Each call still
      # returns a new Array, which the caller may change. Stores with a coercion are not
      # cached.
      def history_partition(store:, partition_key:, partition_value:, since: nil, as_of: nil)
        _history_partition(store, partition_key, partition_value, since, as_of)
      end

      # [{id:, value_hash: (12 hex chars), causation:, transaction_time:}, ...] oldest first.
      def causation_chain(store:, key:)
        _causation_chain(store, key)
      end

      # {subject: {store:, key:}, chain:, depth:, derived_by:, proof_hash:}
      def lineage(store:, key:)
        _lineage(store, key)
      end

      # Every fact in commit order (raw, not coerced); since: >=, as_of: <=.
      def fact_log_all(since: nil, as_of: nil)
        _fact_log_all(since, as_of)
      end

      # Writes a snapshot atomically (file-backed stores); returns
      # {path:, fact_count:, wal_offset:, bytes:}. A no-op answering nil in memory.
      def checkpoint
        return nil if memory?

        _checkpoint
      end

      def inspect
        where = memory? ? "memory" : "#{path} (#{durability})"
        "#<#{self.class.name} #{where} facts=#{fact_count}#{closed? ? " closed" : ""}>"
      end
      alias to_s inspect
    end
  end
end
