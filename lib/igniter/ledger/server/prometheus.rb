# frozen_string_literal: true

module Igniter
  module Ledger
    # Renders a metrics snapshot (ServerMetrics#snapshot, or a server_status answer) in
    # the Prometheus text exposition format: every numeric field becomes a gauge
    # `igniter_ledger_<path>`, Hash fields of counts become one series per key with a
    # label (`requests_total{key="write_fact"}`).
    module Prometheus
      PREFIX = "igniter_ledger"

      module_function

      def render(snapshot)
        lines = []
        walk(snapshot, [], lines)
        lines.join("\n") << "\n"
      end

      def walk(value, path, lines)
        case value
        when Hash
          if path.any? && value.any? && value.values.all?(Numeric)
            labeled(value, path, lines)
          else
            value.each { |k, v| walk(v, path + [k.to_s], lines) }
          end
        when true, false then metric(path, value ? 1 : 0, lines)
        when Numeric then metric(path, value, lines) unless value.is_a?(Float) && (value.nan? || value.infinite?)
        end
      end

      def labeled(hash, path, lines)
        name = metric_name(path)
        lines << "# TYPE #{name} gauge"
        hash.each { |k, v| lines << "#{name}{key=\"#{escape(k.to_s)}\"} #{v}" }
      end

      def metric(path, value, lines)
        name = metric_name(path)
        lines << "# TYPE #{name} gauge"
        lines << "#{name} #{value}"
      end

      def metric_name(path)
        ([PREFIX] + path).join("_").gsub(/[^a-zA-Z0-9_:]/, "_")
      end

      def escape(text)
        text.gsub("\\", "\\\\\\\\").gsub("\"", "\\\"").gsub("\n", "\\n")
      end
    end
  end
end
