# frozen_string_literal: true

module Igniter
  module Ledger
    # Records contractable observations (one record each, keyed by observation_id) and
    # their events (a history partitioned by observation_id) through the protocol, over a
    # local store (`store:`) or a protocol client (`client:`: anything answering the
    # interpreter's register/write/append/read/query/replay, such as
    # `store.protocol` or a remote client).
    class ContractableReceiptSink
      attr_reader :observations_store, :events_store, :producer, :client

      def initialize(store: nil, client: nil, observations_store: :contractable_observations,
                     events_store: :contractable_events, producer: { system: :igniter_contractable })
        raise ArgumentError, "ContractableReceiptSink needs exactly one of store: or client:" if store.nil? == client.nil?

        @client = client || store.protocol
        @observations_store = observations_store.to_sym
        @events_store = events_store.to_sym
        @producer = producer
        register!
      end

      # Writes an observation receipt (a Hash with receipt_kind: :contractable_observation
      # and an observation_id); answers the write Receipt.
      def record_observation(receipt)
        r = hash_of(receipt)
        unless r[:receipt_kind]&.to_sym == :contractable_observation
          raise ArgumentError, "record_observation needs receipt_kind: :contractable_observation, got #{r[:receipt_kind].inspect}"
        end

        id = r[:observation_id] or raise ArgumentError, "record_observation needs observation_id:"
        @client.write(store: @observations_store, key: id.to_s, value: r, producer: @producer)
      end

      # Appends an event (a Hash with an observation_id); answers the append Receipt.
      def record_event(receipt)
        r = hash_of(receipt)
        raise ArgumentError, "record_event needs observation_id:" if r[:observation_id].nil?

        @client.append(history: @events_store, event: r, partition_key: :observation_id, producer: @producer)
      end

      # The observation recorded under `id`, or nil.
      def observation(id)
        @client.read(store: @observations_store, key: id.to_s)
      end

      # The events of observation `id`, oldest first.
      def events_for(id)
        @client.replay(filter: { store: @events_store, partition_key: :observation_id, partition_value: id })
               .map { |packet| packet[:value] }
      end

      # Observations, optionally only those with `status:`, at most `limit:`.
      def observations(status: nil, limit: nil)
        where = status.nil? ? {} : { status: status }
        @client.query(store: @observations_store, where: where, limit: limit).map { |item| item[:value] }
      end

      # Events whose status is :error (or that carry an error:), newest last, at most `limit:`.
      def error_events(limit: nil)
        errors = @client.replay(filter: { store: @events_store }).map { |packet| packet[:value] }
                        .select { |e| e[:status].to_s == "error" || !e[:error].nil? }
        limit ? errors.last(limit) : errors
      end

      private

      def register!
        @client.register(schema_version: 1, kind: :store, name: @observations_store, key: :observation_id,
                         fields: [{ name: :observation_id, type: :string, required: true }],
                         producer: @producer)
        @client.register(schema_version: 1, kind: :history, name: @events_store, key: :observation_id,
                         partition_key: :observation_id, producer: @producer)
      end

      def hash_of(receipt)
        h = receipt.respond_to?(:to_h) ? receipt.to_h : receipt
        raise TypeError, "a contractable receipt must be a Hash, got #{receipt.class}" unless h.is_a?(Hash)

        h.transform_keys(&:to_sym)
      end
    end
  end
end
