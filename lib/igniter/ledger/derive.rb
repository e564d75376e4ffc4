# frozen_string_literal: true

module Igniter
  module Ledger
    # Derived state: derivations, scatters, relations and projections (the semantics live
    # in the Rust core; see the README). Rules run after each published write of their
    # source store, before #write returns; derived writes never trigger rules again. A
    # rule that raises is warned about and counted (#derivation_failures); the source
    # write stands.
    class LedgerStore
      SCHEMA_GRAPHS = Mutex.new
      private_constant :SCHEMA_GRAPHS

      # What is registered on this store (a SchemaGraph; look-ups hand back the
      # registered objects).
      def schema_graph
        @schema_graph || SCHEMA_GRAPHS.synchronize { @schema_graph ||= SchemaGraph.new(store: self) }
      end

      # After each write to `source_store`, `rule.(facts)` gets the latest facts of that
      # store matching `source_filters` (ordered by key) and returns the Hash to write at
      # `target_key` (a key, or a callable of the same facts), or nil to skip. Over a
      # store that already holds facts the rule runs once now and the target is written
      # if it differs (how derived state catches up after a crash). Returns self.
      def register_derivation(source_store:, target_store:, target_key:, rule:, source_filters: {})
        raise TypeError, "source_filters must be a Hash, got #{source_filters.class}" unless source_filters.is_a?(Hash)

        _register_derivation(source_store, source_filters, target_store, target_key, rule)
        schema_graph.register_derivation(
          DerivationRule.new(source_store: source_store.to_sym, source_filters: source_filters,
                             target_store: target_store.to_sym, target_key: target_key, rule: rule)
        )
        self
      end

      # Each written fact of `source_store` whose value has `partition_by` is folded by
      # `rule.(partition_value, existing_target_value, fact)` into the target record at
      # key `partition_value.to_s` (nil: no write). Returns self.
      def register_scatter(source_store:, partition_by:, target_store:, rule:)
        _register_scatter(source_store, partition_by, target_store, rule)
        schema_graph.register_scatter(
          ScatterRule.new(source_store: source_store.to_sym, partition_by: partition_by,
                          target_store: target_store.to_sym, rule: rule)
        )
        self
      end

      # A grow-only index from the `partition` value of `source` facts to their keys,
      # kept as facts in `:__rel_<name>` (it survives reopen); #resolve follows it.
      # Registering the same definition again is a no-op; another definition under the
      # same name raises ArgumentError. Returns self.
      def register_relation(name, source:, partition:, target:)
        _register_relation(name, source, partition, target)
        rule = RelationRule.new(name: name.to_sym, source: source.to_sym, partition: partition,
                                target: target.to_sym)
        graph = schema_graph
        unless graph.relation_for(name: name)
          graph.register_relation(rule)
          graph.register_scatter(
            ScatterRule.new(source_store: rule.source, partition_by: partition, target_store: rule.index_store,
                            rule: LedgerStore.__send__(:relation_index_rule, partition))
          )
        end
        self
      end

      # The values of the `source` keys the relation indexes under `from`, in the order
      # they joined; as_of: the keys that had joined by then, with their values then.
      # Raises ArgumentError ("No relation registered ...") for an unknown name.
      def resolve(name, from:, as_of: nil)
        _resolve(name, from, as_of)
      end

      # Registers a ProjectionPath (metadata only), or one built from the keywords.
      # Returns self.
      def register_projection(projection = nil, **options)
        projection ||= ProjectionPath.new(**options)
        unless projection.is_a?(ProjectionPath)
          raise TypeError, "register_projection needs an Igniter::Ledger::ProjectionPath, got #{projection.class}"
        end

        _register_projection(projection.name, Array(projection.reads), Array(projection.relations),
                             projection.consumer_hint, projection.reactive)
        schema_graph.register_projection(projection)
        self
      end

      class << self
        private

        # The fold a relation index runs, as a callable (what the schema graph shows; the
        # core runs its own copy of the same fold).
        def relation_index_rule(partition)
          lambda do |_partition_value, existing, fact|
            keys = existing ? Array(existing[:keys]) : []
            next nil if keys.include?(fact.key)

            keys += [fact.key]
            { keys: keys, count: keys.size, partition_key: partition }
          end
        end
      end
    end
  end
end
