# frozen_string_literal: true

module Igniter
  module Ledger
    # A store's retention policy: strategy (:permanent, :ephemeral or :rolling_window)
    # and, for :rolling_window, the window in seconds.
    RetentionPolicy = Struct.new(:strategy, :duration, keyword_init: true) unless const_defined?(:RetentionPolicy, false)

    # Readers the Hash returned by LedgerStore#schema_graph answers besides its keys.
    module SchemaGraphReaders
      # The RetentionPolicy of `store`, or nil.
      def retention_for(store:)
        (@retention || {})[store.to_sym]
      end

      # Stores with a retention policy.
      def retention_stores
        (@retention || {}).keys
      end

      # {store => {strategy:, duration:}}
      def retention_snapshot
        (@retention || {}).transform_values(&:to_h)
      end

      # The registered access path of (store, scope) as a Hash, or nil.
      def path_for(store:, scope:)
        Array(self[:paths]).find { |p| p[:store] == store.to_sym && p[:scope] == scope&.to_sym }
      end

      # @api private
      def __retention=(policies)
        @retention = policies
      end
    end

    # Retention, compaction, exact prune and erasure. The semantics live in the Rust core
    # (igniter_ledger::retention); see the README's "Retention and erasure" section.
    class LedgerStore
      # Sets the retention policy of `store`; returns self. strategy: :permanent,
      # :ephemeral (compaction keeps each key's latest fact) or :rolling_window (also keeps
      # facts younger than `duration` seconds; duration: required, non-negative).
      def set_retention(store, strategy:, duration: nil)
        _set_retention(store, strategy, duration)
        self
      end

      # {store => RetentionPolicy}
      def retention_policies
        _retention_policies.to_h do |store, strategy, duration|
          [store, RetentionPolicy.new(strategy: strategy, duration: duration)]
        end
      end

      unless method_defined?(:_schema_graph_without_retention)
        alias_method :_schema_graph_without_retention, :schema_graph

        # What is registered (a Hash), also answering retention_for(store:),
        # retention_stores, retention_snapshot and path_for(store:, scope:).
        def schema_graph
          g = _schema_graph_without_retention
          g = g.dup if g.frozen?
          g.extend(SchemaGraphReaders)
          g.__retention = retention_policies
          g
        end
      end

      # Compacts every store with a retention policy, or only `store`. Returns
      # [{store:, strategy:, dropped_count:, kept_count:, receipt_id:, durable:}, ...], one
      # per store with a non-permanent policy. File-backed, the dropped facts leave the
      # disk in one atomic step together with their receipts.
      def compact(store = nil)
        _compact(store).tap { read_cache.clear }
      end

      # Compaction receipt facts (in :__compaction_receipts), oldest first.
      def compaction_receipts(store: nil)
        _compaction_receipts(store)
      end

      # Removes exactly these facts from every read path and from disk, with a receipt in
      # `receipt_store`. Returns {status: :ok, receipt_id:, pruned_count:, missing_count:,
      # pruned_fact_refs:, missing_ids:, durable:}; ids naming no fact are reported as
      # missing.
      def prune_fact_ids(fact_ids:, reason:, metadata: {}, receipt_store: :__fact_prune_receipts)
        unsupported = exact_prune_unsupported
        return unsupported if unsupported

        _prune_fact_ids(Array(fact_ids), reason, metadata, receipt_store).tap { read_cache.clear }
      end

      # Erases values ("right to be forgotten"): every fact of (store:, key:), or the facts
      # `fact_ids:`. Each stays as a tombstone (id, value_hash, causation, times, metadata;
      # `erased?` true, value nil); the value bytes leave every file of the ledger. `read`
      # of an erased key answers nil. Returns {status: :ok, receipt_id:, erased_count:,
      # erased_fact_refs:, missing_count:, missing_ids:, side_files_removed:, durable:}.
      # Erasing a key with no facts raises ArgumentError.
      def erase(reason:, store: nil, key: nil, fact_ids: nil, actor: nil, metadata: {},
                receipt_store: :__erasure_receipts)
        if fact_ids.nil?
          raise ArgumentError, "erase needs store: and key:, or fact_ids:" if store.nil? || key.nil?
        elsif !store.nil? || !key.nil?
          raise ArgumentError, "erase takes store: and key:, or fact_ids:, not both"
        end

        _erase(store, key, fact_ids.nil? ? nil : Array(fact_ids), reason, actor, metadata, receipt_store)
          .tap { read_cache.clear }
      end

      # Compactions, exact prunes and erasures, oldest first: a plain Array of
      # {kind:, executor:, store:, status:, reason:, fact_count:, receipt_id:, occurred_at:}.
      # A SegmentedFileBackend given as backend: adds its segment purges (kind:
      # :segment_purge); a segmented store's own purges come from the core.
      def compaction_activity(store: nil)
        out = _compaction_activity(store)
        return out unless @backend.respond_to?(:purge_receipts)

        out.concat(SegmentedFileBackend.activity_entries(@backend.purge_receipts(store: store&.to_s)))
        out.sort_by! { |e| e[:occurred_at] }
      end
    end
  end
end
