# frozen_string_literal: true

require "securerandom"

module Igniter
  module Ledger
    # A bounded ring of recent server events (the newest `max_size`), thread-safe.
    class EventRing
      attr_reader :max_size

      def initialize(max_size = 100)
        raise ArgumentError, "max_size must be a positive Integer, got #{max_size.inspect}" unless max_size.is_a?(Integer) && max_size.positive?

        @max_size = max_size
        @items = []
        @lock = Mutex.new
      end

      def push(item)
        @lock.synchronize do
          @items << item
          @items.shift while @items.size > @max_size
        end
        item
      end
      alias << push

      # The events, oldest first (a copy).
      def to_a
        @lock.synchronize { @items.dup }
      end

      def size
        @lock.synchronize { @items.size }
      end
    end

    # The server's counters (the reference's ServerMetrics): connections, requests and
    # bytes per op, errors, facts written/replayed, subscriptions, and threshold alerts.
    # Thread-safe.
    class ServerMetrics
      # A threshold crossed: fired once per type.
      Alert = Struct.new(:id, :fired_at, :type, :threshold, :current_value, :message, keyword_init: true) do
        def to_h
          { id: id, fired_at: fired_at.utc.iso8601(3), type: type, threshold: threshold,
            current_value: current_value, message: message }
        end
      end

      DEFAULT_THRESHOLDS = {
        max_connections: 500,
        error_rate: 0.1,
        replay_size: 10_000,
        quarantine_receipt_count: 10,
        storage_bytes: 1024 * 1024 * 1024,
        slow_op_count: nil
      }.freeze

      attr_reader :thresholds

      def initialize(thresholds: {}, slow_op_threshold_ms: nil)
        unknown = thresholds.keys.map(&:to_sym) - DEFAULT_THRESHOLDS.keys
        raise ArgumentError, "unknown metrics thresholds: #{unknown.join(", ")}" unless unknown.empty?

        @thresholds = DEFAULT_THRESHOLDS.merge(thresholds.transform_keys(&:to_sym)).freeze
        @slow_op_ms = slow_op_threshold_ms
        @lock = Mutex.new
        @started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        @connections = {}
        @accepted = @closed = @rejected = 0
        @requests = Hash.new(0)
        @errors = Hash.new(0)
        @bytes_in = @bytes_out = 0
        @facts_written = @facts_replayed = @largest_replay = 0
        @slow_ops = 0
        @subscriptions = Hash.new(0)
        @alerts = []
      end

      # Registers an accepted connection; answers its id (16 hex digits).
      def record_connection_accepted(remote_addr: nil)
        id = SecureRandom.hex(8)
        @lock.synchronize do
          @accepted += 1
          @connections[id] = { remote_addr: remote_addr, opened_at: Time.now, last_op: nil, ops_count: 0 }
        end
        id
      end

      def record_connection_closed(id:, reason: :normal) # rubocop:disable Lint/UnusedMethodArgument
        @lock.synchronize do
          @connections.delete(id)
          @closed += 1
        end
        nil
      end

      def record_connection_rejected
        @lock.synchronize { @rejected += 1 }
        nil
      end

      def record_request(connection_id:, op:, bytes_in: 0, bytes_out: 0, duration_ms: nil)
        @lock.synchronize do
          @requests[op.to_s] += 1
          @bytes_in += bytes_in.to_i
          @bytes_out += bytes_out.to_i
          @slow_ops += 1 if duration_ms && @slow_op_ms && duration_ms > @slow_op_ms
          if (conn = @connections[connection_id])
            conn[:last_op] = op.to_s
            conn[:ops_count] += 1
          end
        end
        nil
      end

      def record_slow_op
        @lock.synchronize { @slow_ops += 1 }
        nil
      end

      def record_error(op:, error_class:)
        @lock.synchronize { @errors["#{error_class}/#{op}"] += 1 }
        nil
      end

      def record_facts_written(count: 1)
        @lock.synchronize { @facts_written += count }
        nil
      end

      def record_facts_replayed(count:)
        @lock.synchronize do
          @facts_replayed += count
          @largest_replay = count if count > @largest_replay
        end
        nil
      end

      def record_subscription_opened(store:)
        @lock.synchronize { @subscriptions[store.to_s] += 1 }
        nil
      end

      def record_subscription_closed(store:)
        @lock.synchronize do
          key = store.to_s
          @subscriptions[key] = [@subscriptions[key] - 1, 0].max
        end
        nil
      end

      def uptime_ms
        ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - @started) * 1000).round(3)
      end

      def active_connections
        @lock.synchronize { @connections.size }
      end

      def facts_written
        @lock.synchronize { @facts_written }
      end

      def subscription_count(store = nil)
        @lock.synchronize { store.nil? ? @subscriptions.values.sum : @subscriptions[store.to_s] }
      end

      # Every counter, with the backend's storage_stats (nil when it has none).
      def snapshot(backend: nil)
        storage = storage_stats_of(backend)
        @lock.synchronize do
          {
            schema_version: 1,
            generated_at: Time.now.utc.iso8601(3),
            uptime_ms: uptime_ms,
            facts_written: @facts_written,
            facts_replayed: @facts_replayed,
            bytes_in: @bytes_in,
            bytes_out: @bytes_out,
            requests_total: @requests.dup,
            errors_total: @errors.dup,
            active_connections: @connections.size,
            accepted_connections_total: @accepted,
            closed_connections_total: @closed,
            rejected_connections_total: @rejected,
            subscription_count: @subscriptions.values.sum,
            subscriptions_by_store: @subscriptions.dup,
            storage_stats: storage,
            alerts: @alerts.map(&:to_h)
          }
        end
      end

      # Checks every threshold; answers the alerts fired by this check (each type fires
      # once over the metrics' life).
      def check_alerts(backend: nil)
        storage = storage_stats_of(backend)
        @lock.synchronize do
          current = current_values(storage)
          fired = []
          current.each do |type, value|
            threshold = @thresholds[type]
            next if threshold.nil? || value.nil? || value <= threshold
            next if @alerts.any? { |a| a.type == type }

            alert = Alert.new(id: SecureRandom.hex(6), fired_at: Time.now, type: type, threshold: threshold,
                              current_value: value, message: "#{type} exceeded: #{value} > #{threshold}")
            @alerts << alert
            fired << alert
          end
          fired
        end
      end

      # Every alert fired so far.
      def alerts
        @lock.synchronize { @alerts.dup }
      end

      private

      def current_values(storage)
        requests = @requests.values.sum
        errors = @errors.values.sum
        {
          max_connections: @connections.size,
          error_rate: requests.zero? ? (errors.zero? ? nil : 1.0) : errors.fdiv(requests),
          replay_size: @largest_replay,
          quarantine_receipt_count: storage_sum(storage, "quarantine_receipt_count"),
          storage_bytes: storage_sum(storage, "byte_size"),
          slow_op_count: @slow_ops
        }
      end

      def storage_sum(storage, field)
        return nil unless storage.is_a?(Hash)

        stores = storage["stores"] || storage[:stores]
        return nil unless stores.is_a?(Hash)

        stores.values.sum { |s| s.is_a?(Hash) ? (s[field] || s[field.to_sym]).to_i : 0 }
      end

      def storage_stats_of(backend)
        return nil unless backend.respond_to?(:storage_stats)

        backend.storage_stats
      rescue StandardError
        nil
      end
    end
  end
end
