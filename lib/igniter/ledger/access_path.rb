# frozen_string_literal: true

require "set"

module Igniter
  module Ledger
    # A registered way of reading a store.
    #
    # With a scope: `query(store:, scope:)` answers the latest fact of every key whose
    # value matches all filters (top-level equality), from an index maintained on every
    # write; scope consumers are called with (store, scope) when a write moves a key into
    # or out of the scope.
    #
    # Without a scope (a point path): consumers are called with (store, key) after every
    # write to the store.
    #
    # Consumers are any objects responding to #call (checked by LedgerStore#register_path;
    # a path kept only as metadata in a standalone SchemaGraph may hold any objects). A
    # consumer that raises never breaks the write (the failure is counted in
    # LedgerStore#consumer_failures).
    class AccessPath
      attr_reader :store, :scope, :filters, :lookup, :cache_ttl, :consumers

      # filters: nil is the same as {} (the reference's point paths pass nil); consumers:
      # an Array, a Set (any Enumerable) or a single callable.
      def initialize(store:, scope: nil, filters: {}, lookup: nil, cache_ttl: nil, consumers: [])
        filters = {} if filters.nil?
        raise TypeError, "filters must be a Hash, got #{filters.class}" unless filters.is_a?(Hash)

        @store = store.to_sym
        @scope = scope&.to_sym
        @filters = filters.dup.freeze
        @lookup = lookup
        @cache_ttl = cache_ttl
        consumers = [] if consumers.nil?
        @consumers = (consumers.respond_to?(:to_a) && !consumers.respond_to?(:call) ? consumers.to_a : [consumers]).dup.freeze
        freeze
      end

      def scope?
        !@scope.nil?
      end

      def to_h
        { store: store, scope: scope, filters: filters, lookup: lookup, cache_ttl: cache_ttl,
          consumers: consumers }
      end

      def ==(other)
        other.is_a?(AccessPath) && to_h == other.to_h
      end
      alias eql? ==

      def hash
        to_h.hash
      end
    end
  end
end
