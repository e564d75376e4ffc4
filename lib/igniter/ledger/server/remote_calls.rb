# frozen_string_literal: true

module Igniter
  module Ledger
    # The server side of the remote store (Igniter::Ledger.connect): runs one
    # `{op: "call", method:, args:}` request on the server's store. `args` and the result
    # travel as ValueCodec JSON text, so values keep their Ruby types. Only the methods in
    # METHODS can be called; an error comes back as `{ok: false, error_class:, error:}`
    # (with the conflict's store/key/expected/actual for a ConflictError), which the
    # client raises again as the same class.
    module RemoteCalls
      # method name => the store call (kwargs Hash → result).
      METHODS = {
        "write" => ->(s, a) { s.write(**a) },
        "append" => ->(s, a) { s.append(**a) },
        "transaction" => ->(s, a) { s.write_batch(a.fetch(:operations)) },
        "read" => ->(s, a) { s.read(**a) },
        "read_fact" => ->(s, a) { s.read_fact(**a) },
        "time_travel" => ->(s, a) { s.time_travel(**a) },
        "history" => ->(s, a) { s.history(**a) },
        "history_partition" => ->(s, a) { s.history_partition(**a) },
        "query" => ->(s, a) { s.query(**a) },
        "register_path" => ->(s, a) { s.register_path(AccessPath.new(**a)) && true },
        "causation_chain" => ->(s, a) { s.causation_chain(**a) },
        "lineage" => ->(s, a) { s.lineage(**a) },
        "fact_count" => ->(s, _a) { s.fact_count },
        "fact_log_all" => ->(s, a) { s.fact_log_all(**a) },
        "fact_by_id" => ->(s, a) { s.fact_by_id(a.fetch(:id)) },
        "checkpoint" => ->(s, _a) { s.checkpoint && true }
      }.freeze

      # Error classes the client may raise again by name.
      RAISABLE = %w[ArgumentError TypeError KeyError RangeError].freeze

      module_function

      # Calls that write, and so count as facts written.
      WRITES = %w[write append transaction].freeze

      # The response Hash for one call request; yields the number of facts a write call
      # committed.
      def run(store, request)
        name = request[:method].to_s
        call = METHODS[name]
        return { ok: false, error_code: "unknown_method", error_class: "ArgumentError", error: "unknown remote method #{name.inspect}" } unless call

        args = request[:args].nil? ? {} : ValueCodec.load(request[:args].to_s)
        raise ArgumentError, "remote #{name}: arguments must be a Hash" unless args.is_a?(Hash)

        args = args.transform_keys { |k| k.is_a?(String) ? k.to_sym : k }
        result = call.call(store, args)
        yield(result.is_a?(Array) ? result.size : 1) if block_given? && WRITES.include?(name)
        { ok: true, result: ValueCodec.dump(result) }
      rescue StandardError => e
        error_response(e)
      end

      def error_response(error)
        out = { ok: false, error_code: "raised", error_class: error.class.name, error: error.message }
        if error.is_a?(ConflictError)
          out[:conflict] = ValueCodec.dump({ store: error.store, key: error.key, expected: error.expected,
                                             actual: error.actual })
        end
        out
      end
    end
  end
end
