# frozen_string_literal: true

require "weakref"

module Igniter
  module Ledger
    # The ledger. In memory (`LedgerStore.new`) or file-backed (`LedgerStore.open(path)`).
    # Safe to share between Ruby threads.
    #
    # Every method here is a thin keyword-argument wrapper over a native method, which
    # converts all its arguments at once (ext/igniter_ledger/src/); the semantics live in
    # the Rust core. A write to a closed handle raises ClosedError, and every fact
    # committed is handed to the `backend:` object, if any, natively.
    class LedgerStore
      # The "not given" default of `expected:` (nil means "must not exist yet"): the
      # native call then gets no `expected` argument.
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
        #
        # backend: may also be any object answering #write_fact (the reference's backend
        # protocol): the store then lives in memory and hands every committed fact to
        # `backend.write_fact(fact)`, in commit order.
        #
        # hash_keys: :keep (values are type-faithful) or :symbolize (String hash keys of
        # values, producers and derivations become Symbols at write time, at every depth:
        # the reference gem's key behaviour). Default: Igniter::Ledger.hash_keys.
        #
        # changefeed: a ChangefeedBuffer that receives every commit (see changefeed.rb).
        def new(backend: nil, durability: nil, recover: nil, read_cache: nil, lru_cap: nil, partition_cache: nil,
                hash_keys: nil, changefeed: nil)
          cache = cache_entries(read_cache, lru_cap)
          keys = hash_keys_name(hash_keys)
          slices = partition_handles(partition_cache)
          case backend
          when nil, :memory
            raise ArgumentError, "durability: needs a file-backed store" if durability

            _memory(self, cache, slices, keys).__send__(:setup, lru_cap, nil).__send__(:attach_changefeed, changefeed)
          when FileBackend
            open(backend.path, durability: durability || backend.durability,
                               recover: recover.nil? ? backend.recover : recover, read_cache: cache,
                               lru_cap: lru_cap, partition_cache: slices, hash_keys: keys.to_sym, changefeed: changefeed)
          else
            unless backend.respond_to?(:write_fact)
              raise ArgumentError,
                    "backend: must be nil (in memory), an Igniter::Store::FileBackend or an object " \
                    "answering #write_fact, got #{backend.class}"
            end
            raise ArgumentError, "durability: needs a file-backed store" if durability

            _memory(self, cache, slices, keys).__send__(:setup, lru_cap, backend).__send__(:attach_changefeed, changefeed)
          end
        end

        # Opens (or creates) the ledger whose WAL is at `path`; the snapshot is
        # `path + ".snap"`. durability: :fsync (default) | :flush | :none.
        # recover: true moves mid-log damage aside (to `path.corrupt-<offset>`) instead of
        # raising CorruptionError. read_cache:, partition_cache:, hash_keys: as for .new
        # (hash_keys: applies to what is written from now on). With a block, yields the
        # store and closes it after.
        #
        # Opening a file that this process already has open (through any spelling of its
        # path, while that handle is open) gives a second handle on the same ledger, as
        # the reference gem's code expects (it opened the file twice): both see every
        # fact, one writer owns the WAL, and the file is closed when the last handle is.
        # The first open's durability applies. Another process's open file raises
        # LockedError.
        #
        # changefeed: a ChangefeedBuffer that receives every commit (see changefeed.rb).
        def open(path, durability: :fsync, recover: false, read_cache: nil, lru_cap: nil, partition_cache: nil,
                 hash_keys: nil, changefeed: nil)
          path = path.to_path if path.respond_to?(:to_path)
          raise TypeError, "path must be a String or Pathname, got #{path.class}" unless path.is_a?(String)
          raise ArgumentError, "path must not contain a NUL byte: #{path.inspect}" if path.include?("\0")

          keys = hash_keys_name(hash_keys)
          begin
            store = _open(self, path, durability.to_s, recover ? true : false, cache_entries(read_cache, lru_cap),
                          partition_handles(partition_cache), keys)
            OpenFiles.add(path, store)
          rescue LockedError
            first = OpenFiles.find(path)
            raise if first.nil?

            if first.hash_keys.to_s != keys
              raise ArgumentError, "#{path} is open in this process with hash_keys: :#{first.hash_keys}; " \
                                   "a second handle cannot use hash_keys: :#{keys}"
            end
            store = first.__send__(:_share, self)
            store.__send__(:join, first)
          end
          return finish_open(store, lru_cap, changefeed) unless block_given?

          finish_open(store, lru_cap, changefeed) { |s| yield s }
        end

        # The last steps of every open: the Ruby-side setup and the changefeed (the store
        # is closed if attaching fails). With a block, yields the store and closes it after;
        # answers the store otherwise.
        def finish_open(store, lru_cap, changefeed)
          store.__send__(:setup, lru_cap, nil)
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
        private :finish_open

        def memory
          new
        end

        private

        def cache_entries(read_cache, lru_cap)
          n = read_cache.nil? ? (lru_cap.nil? ? DEFAULT_READ_CACHE : lru_cap) : read_cache
          raise ArgumentError, "read_cache: must be a non-negative Integer, got #{n.inspect}" unless n.is_a?(Integer) && n >= 0

          n
        end

        def hash_keys_name(hash_keys)
          hash_keys = Ledger.hash_keys if hash_keys.nil?
          unless %i[keep symbolize].include?(hash_keys)
            raise ArgumentError, "hash_keys: must be :keep or :symbolize, got #{hash_keys.inspect}"
          end

          hash_keys.to_s
        end

        def partition_handles(partition_cache)
          n = partition_cache.nil? ? DEFAULT_PARTITION_CACHE : partition_cache
          raise ArgumentError, "partition_cache: must be a non-negative Integer, got #{n.inspect}" unless n.is_a?(Integer) && n >= 0

          n
        end
      end
      private_class_method :_memory, :_open

      # The store's ReadCache: scope entries (cache_ttl queries) are kept here, time-travel
      # reads natively (ext/igniter_ledger/src/reads.rs), bounded by the same lru_cap: and
      # counted, cleared and invalidated through this object.
      class StoreCache < ReadCache
        def initialize(store, lru_cap: DEFAULT_LRU_CAP)
          super(lru_cap: lru_cap)
          @store = store
          store.__send__(:_time_travel_cap, lru_cap)
        end

        def lru_size
          super + @store.__send__(:_time_travel_size)
        end

        def size
          super + @store.__send__(:_time_travel_size)
        end

        def invalidate(store:, key: nil)
          @store.__send__(:_time_travel_forget, store, key)
          super
        end

        def clear
          @store.__send__(:_time_travel_forget, nil, nil)
          super
        end
      end
      private_constant :StoreCache

      # The file-backed stores this process has open, by file identity (device, inode),
      # so that a second open of the same file can share the first handle's ledger. A
      # forked child inherits the table but not the ledgers: entries are only answered in
      # the process that opened them.
      module OpenFiles
        @lock = Mutex.new
        @by_file = {}

        class << self
          def add(path, store)
            id = identity(path) or return
            @lock.synchronize do
              @by_file.delete_if { |_, (_, ref)| !alive(ref) }
              @by_file[id] = [Process.pid, WeakRef.new(store)]
            end
          end

          # The open store holding the file at `path` in this process, or nil.
          def find(path)
            id = identity(path) or return nil
            pid, ref = @lock.synchronize { @by_file[id] }
            store = pid == Process.pid && alive(ref)
            store && !store.closed? ? store : nil
          end

          private

          def identity(path)
            st = File.stat(path)
            [st.dev, st.ino]
          rescue SystemCallError
            nil
          end

          def alive(ref)
            ref.weakref_alive? ? ref.__getobj__ : nil
          rescue WeakRef::RefError
            nil
          end
        end
      end
      private_constant :OpenFiles

      # Closes this handle. The ledger (WAL flushed and synced, file lock released) closes
      # with its last open handle; reads keep answering from memory after.
      def close
        handles = @handles
        return _close if handles.nil?

        last = handles[:lock].synchronize do
          next false unless _close_handle

          (handles[:open] -= 1).zero?
        end
        last ? _close : nil
      end

      # True once this handle (or the ledger) is closed.
      def closed?
        _handle_closed? || _closed?
      end

      # Writes `value` to (store, key); returns the new Fact. Its causation defaults to the
      # previous fact of the key. `expected:` (a fact id or Fact; nil or :none for "the key
      # must not exist") makes the write conditional: a ConflictError, with nothing
      # written, when the latest fact of the key is another one.
      def write(store:, key:, value:, schema_version: 1, causation: nil, valid_time: nil, term: nil,
                producer: nil, derivation: nil, expected: UNSET)
        if UNSET.equal?(expected)
          _write(store, key, value, schema_version, causation, valid_time, term, producer, derivation)
        else
          _write(store, key, value, schema_version, causation, valid_time, term, producer, derivation, expected)
        end
      end

      # Appends `event` to a history under a fresh UUID key; returns the Fact.
      # `partition_key:` names the event field the history is partitioned by (optional:
      # history_partition answers correctly either way).
      def append(history:, event:, partition_key: nil, schema_version: 1, causation: nil,
                 valid_time: nil, term: nil, producer: nil, derivation: nil)
        _append(history, event, partition_key, schema_version, causation, valid_time, term, producer, derivation)
      end

      # transaction { |tx| ... } (native) commits the writes and appends queued in the
      # block (see Transaction) atomically; returns their facts in order. If the block
      # raises, nothing is written.

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
      #
      # Time-travel reads (as_of:) go through the store's ReadCache (their entries kept
      # natively, bounded by lru_cap:): the same read again, with nothing written in
      # between, answers the same (frozen) object.
      #
      # ttl: (the reference's "a cached answer no older than ttl seconds") is accepted and
      # always met: a current read here never answers from a stale cache.
      def read(store:, key:, as_of: nil, valid_at: nil, ttl: nil) # rubocop:disable Lint/UnusedMethodArgument
        _read(store, key, as_of, valid_at)
      end

      # Like #read, but answers the Fact (or CoercedFact), or nil.
      def read_fact(store:, key:, as_of: nil, valid_at: nil)
        _read_fact(store, key, as_of, valid_at)
      end

      # #read as of transaction time `at`.
      def time_travel(store:, key:, at:)
        read(store: store, key: key, as_of: at)
      end

      # The latest fact of every key whose value matches the scope's filters, ordered by
      # key. Raises UnknownScopeError (an ArgumentError) for an unregistered scope.
      #
      # As in the reference: the first current-state query of a scope makes it "warm",
      # and only warm scopes notify their consumers; a scope path with `cache_ttl:`
      # answers a repeated query within the TTL, with nothing written in between, with
      # the same Array. ttl: overrides the path's cache_ttl for this query.
      def query(store:, scope:, as_of: nil, ttl: nil)
        return _query(store, scope, as_of) unless as_of.nil?

        id = [name_key(store), name_key(scope)]
        ttl ||= scope_ttls[id]
        if ttl
          token = fact_count
          hit = read_cache.get_scope(store: store, scope: scope, ttl: ttl, token: token)
          return hit if hit
        end
        facts = _query(store, scope, nil)
        warm_scopes[id] = true
        read_cache.put_scope(store: store, scope: scope, facts: facts, token: token) if ttl
        facts
      end

      # Registers an AccessPath; returns it.
      def register_path(path)
        raise TypeError, "register_path needs an Igniter::Ledger::AccessPath, got #{path.class}" unless path.is_a?(AccessPath)

        consumers = path.consumers
        if path.scope?
          id = [path.store, path.scope]
          warm = warm_scopes
          consumers = consumers.map { |c| ->(s, sc) { c.call(s, sc) if warm[id] } }
          scope_ttls[id] = path.cache_ttl if path.cache_ttl
        end
        _register_path(path.store, path.scope, path.filters, path.lookup, path.cache_ttl, consumers)
        schema_graph.register(path)
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
        read_cache.clear
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

      # Storage statistics of a segmented store (String keys, see SegmentedFileBackend);
      # nil for every other store, as in the 0.5.x gem.
      def storage_stats(store: nil)
        Segmented.parse(_segments_json("stats", store&.to_s))
      end

      # The segment manifest of a segmented store; nil for every other store.
      def segment_manifest(store: nil)
        Segmented.parse(_segments_json("manifest", store&.to_s))
      end

      # Every fact in commit order (raw, not coerced); since: >=, as_of: <=.
      def fact_log_all(since: nil, as_of: nil)
        _fact_log_all(since, as_of)
      end

      # Writes a snapshot atomically (file-backed stores); returns
      # {path:, fact_count:, wal_offset:, bytes:}. A no-op answering nil in memory.
      def checkpoint
        return nil if memory?

        handle_open!

        _checkpoint
      end

      private

      # Joins the handles of the ledger `first` holds (see .open).
      def join(first)
        handles = first.instance_variable_get(:@handles)
        unless handles
          handles = { lock: Mutex.new, open: 1 }
          first.instance_variable_set(:@handles, handles)
        end
        handles[:lock].synchronize { handles[:open] += 1 }
        @handles = handles
        # One ledger, one view of which scopes are warm and which paths have a TTL, and
        # one read cache (a coercion registered through either handle clears it).
        @warm_scopes = first.__send__(:warm_scopes)
        @scope_ttls = first.__send__(:scope_ttls)
        @cache = first.__send__(:read_cache)
      end

      # Takes in a fact recorded elsewhere — a Fact, or a Hash as Fact.from_h accepts —
      # with its id, transaction time and causation (the reference's private
      # `replay(fact)`, which backends and clients call with `__send__` to load a store).
      # Its transaction time is kept when it is later than every fact here, else moved to
      # the next microsecond. A fact already here is not taken twice: that one is
      # answered. Not handed to a `backend:` (it came from there).
      def replay(fact)
        handle_open!
        fact = Fact.from_h(fact) if fact.is_a?(Hash)
        raise TypeError, "replay needs an Igniter::Store::Fact or a Hash, got #{fact.class}" unless fact.is_a?(Fact)

        existing = fact_by_id(fact.id)
        return existing if existing

        _replay(fact)
      end

      def handle_open!
        raise ClosedError, "this handle of #{path} was closed (the ledger stays open for its other handles)" if _handle_closed?
      end

      def setup(lru_cap, backend)
        @cache ||= StoreCache.new(self, lru_cap: lru_cap.nil? ? ReadCache::DEFAULT_LRU_CAP : lru_cap)
        _set_backend(backend)
        @warm_scopes ||= {}
        @scope_ttls ||= {}
        self
      end

      # The ReadCache (time-travel reads, cache_ttl scope queries).
      def read_cache
        @cache ||= StoreCache.new(self)
      end

      # A store or scope name as the Symbol registration uses (anything else as given:
      # the native call refuses it with the proper error).
      def name_key(name)
        name.is_a?(String) && name.valid_encoding? ? name.to_sym : name
      end

      def warm_scopes
        @warm_scopes ||= {}
      end

      def scope_ttls
        @scope_ttls ||= {}
      end

      # The answer an exact prune (prune_fact_ids, retention issue) must give, before
      # pruning anything, when this store hands its facts to a `backend:` object that
      # cannot rewrite its copy (no #replace_with_snapshot!): pruning only here would
      # leave the pruned facts in the backend. nil when pruning may go ahead.
      def exact_prune_unsupported
        if segmented?
          return { status: :unsupported, reason: :backend_does_not_support_exact_prune, backend: SegmentedFileBackend.name }
        end
        backend = _backend
        return nil if backend.nil? || backend.respond_to?(:replace_with_snapshot!)

        { status: :unsupported, reason: :backend_does_not_support_exact_prune, backend: backend.class.name }
      end

      public

      def inspect
        where = memory? ? "memory" : "#{path} (#{durability})"
        "#<#{self.class.name} #{where} facts=#{fact_count}#{closed? ? " closed" : ""}>"
      end
      alias to_s inspect
    end
  end
end
