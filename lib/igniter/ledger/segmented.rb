# frozen_string_literal: true

module Igniter
  module Ledger
    # Segmented storage: `root/wal/store=<s>/date=<bucket>/segment-NNNNNN.wal`, sealed with
    # a JSON manifest (byte size, fact count, time range, codec, blake3), purged by whole
    # segments per retention, quarantined with a receipt when damaged. The semantics live
    # in the Rust core (`igniter_ledger::segments`); this file shapes arguments.
    #
    # Options (both SegmentedFileBackend.new and Igniter::Ledger.segmented):
    #   max_bytes:   rotate once a segment holds this many bytes (positive; 64 MiB)
    #   time_bucket: :day (default), :hour or :none
    #   codec:       :json_crc32 (alias :frames; one frame per commit) or :compact_delta
    #                (alias :compact; zlib batches), or {store => codec}. Both are lossless;
    #                manifests name them ledger_frames and ledger_compact_zlib.
    #   retention:   {store => {strategy: :ephemeral | :rolling_window | :permanent, duration:}}
    #   flush:       :batch (every Codecs::CompactDelta::BATCH_SIZE facts), :on_write or
    #                {every_n: N}: when the compact codec writes its buffer
    #   durability:  :fsync (default: what is written is fsynced before a commit returns),
    #                :flush (write(2) only: survives a process crash) or :none
    # `flush:` decides WHEN a compact segment's buffered facts are written; `durability:`
    # decides whether what is written is fsynced. durability_snapshot reports both.
    module Segmented
      DEFAULTS = { max_bytes: 64 * 1024 * 1024, time_bucket: :day, codec: :json_crc32, retention: {},
                   flush: :batch, durability: :fsync }.freeze

      class << self
        # The positional options array the native constructors take.
        def options(max_bytes:, time_bucket:, codec:, retention:, flush:, durability:)
          unless max_bytes.is_a?(Integer)
            raise TypeError, "max_bytes must be an Integer number of bytes, got #{max_bytes.inspect}"
          end

          default, per_store = codecs(codec)
          flush_name, every_n = flush_policy(flush)
          [max_bytes, name(time_bucket, "time_bucket"), default, per_store, retention_pairs(retention),
           flush_name, every_n, name(durability, "durability")]
        end

        def root_path(root)
          root = root.to_path if root.respond_to?(:to_path)
          raise TypeError, "root must be a String or Pathname, got #{root.class}" unless root.is_a?(String)
          raise ArgumentError, "root #{root} is a file, not a directory" if File.file?(root)

          root
        end

        def parse(json)
          json && JSON.parse(json)
        end

        private

        def name(v, what)
          return v.to_s if v.is_a?(Symbol) || v.is_a?(String)

          raise ArgumentError, "#{what} must be a Symbol, got #{v.inspect}"
        end

        def codecs(codec)
          return ["json_crc32", codec.map { |s, c| [s.to_s, name(c, "codec")] }] if codec.is_a?(Hash)

          [name(codec, "codec"), []]
        end

        def flush_policy(flush)
          case flush
          when :batch, "batch", :on_write, "on_write" then [flush.to_s, 0]
          when Hash
            n = flush[:every_n] || flush["every_n"]
            raise ArgumentError, "flush: {every_n: N} needs a positive Integer, got #{n.inspect}" unless n.is_a?(Integer) && n.positive?

            ["every_n", n]
          else raise ArgumentError, "flush must be :batch, :on_write or {every_n: N}, got #{flush.inspect}"
          end
        end

        def retention_pairs(retention)
          raise ArgumentError, "retention must be a Hash of store => {strategy:, duration:}" unless retention.is_a?(Hash)

          retention.map do |store, policy|
            raise ArgumentError, "retention for #{store} must be a Hash with strategy:" unless policy.is_a?(Hash)

            p = policy.transform_keys(&:to_sym)
            [store.to_s, name(p.fetch(:strategy), "strategy"), p[:duration]&.to_f]
          end
        end
      end
    end

    # The reference gem's segment directory used on its own: write_fact / replay /
    # checkpoint! / close, retention purge with receipts, quarantine receipts and the
    # storage reports (String keys). See Segmented for the options.
    class SegmentedFileBackend
      # Stands for a store's live segment file in @segments (the reference kept the File
      # there): #close drops it the way a crash would — nothing buffered is written and
      # nothing is sealed.
      class LiveFile
        def initialize(backend, store)
          @backend = backend
          @store = store
        end

        def close
          @backend.__send__(:_abandon, @store)
          nil
        end
      end

      class << self
        # Purge receipts as compaction_activity entries.
        def activity_entries(receipts)
          receipts.map do |r|
            { kind: :segment_purge, executor: :segmented_backend, store: r["store"]&.to_sym, status: :ok,
              reason: r["reason"], fact_count: r["fact_count"], receipt_id: r["segment_id"],
              occurred_at: r["purged_at"].to_f }
          end
        end

        def new(root, **opts)
          unknown = opts.keys - Segmented::DEFAULTS.keys
          raise ArgumentError, "unknown keyword#{"s" if unknown.size > 1}: #{unknown.map(&:inspect).join(", ")}" unless unknown.empty?

          root = Segmented.root_path(root)
          b = _new(root, Segmented.options(**Segmented::DEFAULTS, **opts))
          b.instance_variable_set(:@root, root)
          b.instance_variable_set(:@segments, {})
          b
        end
      end

      attr_reader :root

      def write_fact(fact)
        _write_fact(fact)
        @segments[fact.store.to_s] ||= { file: LiveFile.new(self, fact.store.to_s) }
        nil
      end

      # Facts sorted by transaction time. since:/as_of: skip whole sealed segments outside
      # the range (by their manifests); the live segment is always read.
      def replay(store: nil, since: nil, as_of: nil)
        _replay(store&.to_s, since&.to_f, as_of&.to_f)
      end

      # Seals every live segment and opens a fresh one per store.
      def checkpoint!
        _checkpoint
        nil
      end

      # The 0.5.x backend call: segments need no snapshot.
      def write_snapshot(_facts = nil)
        nil
      end

      def close
        _close
        nil
      end

      def set_retention(store, strategy:, duration: nil)
        _set_retention(store.to_s, strategy.to_s, duration&.to_f)
        nil
      end

      # Purges sealed segments per the retention policies; returns the receipts.
      def purge!(store: nil)
        JSON.parse(_purge(store&.to_s))
      end

      def purge_receipts(store: nil, since: nil, until_: nil, limit: nil)
        JSON.parse(_purge_receipts(store&.to_s, since&.to_f, until_&.to_f, limit))
      end

      def quarantine_receipts(store: nil)
        JSON.parse(_quarantine_receipts(store&.to_s))
      end

      def durability_snapshot
        JSON.parse(_durability_snapshot)
      end

      def storage_stats(store: nil)
        JSON.parse(_storage_stats(store&.to_s))
      end

      def segment_manifest(store: nil)
        JSON.parse(_segment_manifest(store&.to_s))
      end
    end

    class LedgerStore
      class << self
        # A store over a segment directory (see Segmented for the options); read_cache:,
        # partition_cache:, hash_keys: and changefeed: as for .new. With a block, yields
        # the store and closes it after.
        def segmented(root, read_cache: nil, lru_cap: nil, partition_cache: nil, hash_keys: nil, changefeed: nil,
                      **opts)
          unknown = opts.keys - Segmented::DEFAULTS.keys
          raise ArgumentError, "unknown keyword#{"s" if unknown.size > 1}: #{unknown.map(&:inspect).join(", ")}" unless unknown.empty?

          store = _open_segmented(self, Segmented.root_path(root), Segmented.options(**Segmented::DEFAULTS, **opts),
                                  cache_entries(read_cache, lru_cap), partition_handles(partition_cache),
                                  hash_keys_name(hash_keys))
          return finish_open(store, lru_cap, changefeed) unless block_given?

          finish_open(store, lru_cap, changefeed) { |s| yield s }
        end
      end

      # Purges sealed segments of a segmented store per its segment retention (keeping
      # the latest fact of every key); returns the receipts.
      def purge_segments!(store: nil)
        JSON.parse(_purge_segments(store&.to_s))
      end

      # Seals every live segment of a segmented store and starts fresh ones.
      def seal_segments!
        _seal_segments
        nil
      end

      # What a crash would lose now (segmented stores; nil otherwise).
      def durability_snapshot
        Segmented.parse(_segments_json("durability", nil))
      end
    end

    class << self
      # A ledger over a segment directory (see LedgerStore.segmented).
      def segmented(root, **options, &block)
        LedgerStore.segmented(root, **options, &block)
      end
    end
  end
end
