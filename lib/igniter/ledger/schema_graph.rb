# frozen_string_literal: true

require "monitor"

module Igniter
  module Ledger
    # A derivation as registered: the rule gets the latest facts of `source_store` that
    # match `source_filters` and returns the value written at `target_key` (a key, or a
    # callable of the same facts).
    DerivationRule = Struct.new(:source_store, :source_filters, :target_store, :target_key, :rule,
                                keyword_init: true)

    # A scatter as registered: `rule.(partition_value, existing_target_value, fact)`.
    ScatterRule = Struct.new(:source_store, :partition_by, :target_store, :rule, keyword_init: true)

    # A relation as registered: a grow-only index from `partition` values of `source`
    # facts to their keys, kept in the store `index_store` (`:__rel_<name>`).
    RelationRule = Struct.new(:name, :source, :partition, :target, keyword_init: true) do
      def index_store
        :"__rel_#{name}"
      end
    end

    # A declared read model (metadata only).
    ProjectionPath = Struct.new(:name, :reads, :relations, :consumer_hint, :reactive, keyword_init: true) do
      def initialize(name:, reads:, relations: [], consumer_hint: :contract_node, reactive: false)
        super
      end
    end

    # What is registered: access paths, relations, scatters, derivations, projections,
    # retention policies, command and effect descriptors. `LedgerStore#schema_graph` is
    # one (kept up to date by the store's register_* methods); `SchemaGraph.new` makes a
    # standalone one. Look-ups hand back the registered objects themselves; snapshots
    # are plain Hashes/Arrays in the reference gem's shapes (rules and consumers left
    # out).
    class SchemaGraph
      def initialize(store: nil)
        @store = store
        @lock = Monitor.new
        @paths = {}
        @relations = {}
        @scatters = []
        @derivations = []
        @projections = {}
        @retention = {}
        @commands = {}
        @effects = {}
      end

      # ------------------------------------------------------------ access paths

      # Adds an access path (metadata; `LedgerStore#register_path` also wires it).
      def register(path)
        @lock.synchronize { (@paths[path.store.to_sym] ||= []) << path }
        self
      end

      # The paths of `store` (a copy).
      def paths_for(store)
        @lock.synchronize { (@paths[store.to_sym] || []).dup }
      end

      # The scope path `scope` of `store`, or nil.
      def path_for(store:, scope:)
        paths_for(store).find { |p| p.scope == scope }
      end

      # The distinct consumers of every path of `store`.
      def consumers_for(store)
        paths_for(store).flat_map { |p| p.consumers.to_a }.uniq
      end

      # Stores with at least one path.
      def registered_stores
        @lock.synchronize { @paths.keys }
      end

      # {store => [{store:, scope:, lookup:, filters:, cache_ttl:, consumer_count:}]}
      def metadata_snapshot
        @lock.synchronize do
          @paths.transform_values do |paths|
            paths.map do |p|
              { store: p.store, scope: p.scope, lookup: p.lookup, filters: p.filters, cache_ttl: p.cache_ttl,
                consumer_count: p.consumers.to_a.size }
            end
          end
        end
      end

      # ------------------------------------------------------------ relations

      def register_relation(rule)
        @lock.synchronize { @relations[rule.name.to_sym] = rule }
        self
      end

      # The RelationRule named `name`, or nil.
      def relation_for(name:)
        @lock.synchronize { @relations[name.to_sym] }
      end

      def registered_relations
        @lock.synchronize { @relations.keys }
      end

      # {name => {name:, source:, partition:, target:, index_store:}}
      def relation_snapshot
        @lock.synchronize do
          @relations.transform_values do |r|
            { name: r.name, source: r.source, partition: r.partition, target: r.target, index_store: r.index_store }
          end
        end
      end

      # ------------------------------------------------------------ scatters

      def register_scatter(rule)
        @lock.synchronize { @scatters << rule }
        self
      end

      # The ScatterRules whose source is `store`.
      def scatters_for_store(store:)
        @lock.synchronize { @scatters.select { |s| s.source_store == store.to_sym } }
      end

      # [{source_store:, partition_by:, target_store:, has_rule:}]
      def scatter_snapshot
        @lock.synchronize do
          @scatters.map do |s|
            { source_store: s.source_store, partition_by: s.partition_by, target_store: s.target_store,
              has_rule: !s.rule.nil? }
          end
        end
      end

      # ------------------------------------------------------------ derivations

      def register_derivation(rule)
        @lock.synchronize { @derivations << rule }
        self
      end

      # The DerivationRules whose source is `store`.
      def derivations_for_store(store:)
        @lock.synchronize { @derivations.select { |d| d.source_store == store.to_sym } }
      end

      # [{source_store:, source_filters:, target_store:, target_key: (key or :callable), has_rule:}]
      def derivation_snapshot
        @lock.synchronize do
          @derivations.map do |d|
            { source_store: d.source_store, source_filters: d.source_filters, target_store: d.target_store,
              target_key: d.target_key.respond_to?(:call) ? :callable : d.target_key, has_rule: !d.rule.nil? }
          end
        end
      end

      # ------------------------------------------------------------ projections

      def register_projection(projection)
        @lock.synchronize { @projections[projection.name.to_sym] = projection }
        self
      end

      def projection_for(name:)
        @lock.synchronize { @projections[name.to_sym] }
      end

      # Projections that read `store`.
      def projections_for_store(store:)
        @lock.synchronize { @projections.values.select { |p| Array(p.reads).include?(store.to_sym) } }
      end

      # {name => {name:, reads:, relations:, consumer_hint:, reactive:, store_count:, relation_count:}}
      def projection_snapshot
        @lock.synchronize do
          @projections.transform_values do |p|
            reads = Array(p.reads)
            relations = Array(p.relations)
            { name: p.name, reads: reads, relations: relations, consumer_hint: p.consumer_hint,
              reactive: p.reactive, store_count: reads.size, relation_count: relations.size }
          end
        end
      end

      # ------------------------------------------------------------ retention

      # Records a retention policy for `store` (metadata; `strategy:`, `duration:`).
      def register_retention(store, strategy:, duration: nil)
        @lock.synchronize { @retention[store.to_sym] = { strategy: strategy, duration: duration } }
        self
      end

      # The retention policy of `store`, or nil.
      def retention_for(store = nil, **kw)
        store = kw.fetch(:store) if store.nil?
        @lock.synchronize { @retention[store.to_sym] }
      end

      # {store => {strategy:, duration:}}
      def retention_snapshot
        @lock.synchronize { @retention.dup }
      end

      # ------------------------------------------------------------ descriptors

      def register_command_descriptor(name:, owner:, **attributes)
        @lock.synchronize { (@commands[owner.to_sym] ||= {})[name.to_sym] = { name: name, owner: owner, **attributes } }
        self
      end

      def register_effect_descriptor(name:, owner:, **attributes)
        @lock.synchronize { (@effects[owner.to_sym] ||= {})[name.to_sym] = { name: name, owner: owner, **attributes } }
        self
      end

      # {owner => {name => descriptor}}
      def command_snapshot
        @lock.synchronize { @commands.transform_values(&:dup) }
      end

      # {owner => {name => descriptor}}
      def effect_snapshot
        @lock.synchronize { @effects.transform_values(&:dup) }
      end

      # Every registry at once.
      def descriptor_snapshot
        { paths: metadata_snapshot, relations: relation_snapshot, projections: projection_snapshot,
          derivations: derivation_snapshot, scatters: scatter_snapshot, retention: retention_snapshot,
          commands: command_snapshot, effects: effect_snapshot }
      end

      # ------------------------------------------------------------ the store's view

      # For a store's graph: what the core has registered and holds
      # ({paths:, partitions:, coercions:, stores:}); for a standalone graph, the
      # descriptor snapshot.
      def to_h
        @store ? @store.__send__(:_schema_graph) : descriptor_snapshot
      end

      def [](key)
        to_h[key]
      end

      def inspect
        "#<#{self.class.name} paths=#{@paths.values.sum(&:size)} relations=#{@relations.size} " \
          "scatters=#{@scatters.size} derivations=#{@derivations.size} projections=#{@projections.size}>"
      end
    end
  end
end
