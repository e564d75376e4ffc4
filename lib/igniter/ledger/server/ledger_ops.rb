# frozen_string_literal: true

module Igniter
  module Ledger
    # The `ledger.*` ops of the framed protocol, in plain JSON (values as the protocol's
    # JSON: object keys read back as Symbols, Symbols sent as Strings), the form the Rust
    # client (`igniter_ledger_server::client::RemoteStore`) speaks:
    #
    # | op | request | answer |
    # |---|---|---|
    # | `ledger.write` | `{store, key, value, expected?, valid_time?, causation?, producer?, derivation?}` | `{ok, fact}` |
    # | `ledger.append` | `{history, event, partition_key?, valid_time?, causation?, producer?}` | `{ok, fact}` |
    # | `ledger.commit` | `{ops: [{op: "write" \| "append", ...}]}` | `{ok, facts}` (atomic) |
    # | `ledger.read` | `{store, key, as_of?, valid_at?}` | `{ok, found, value, fact}` |
    # | `ledger.history` | `{store, key?, since?, as_of?}` | `{ok, facts}` |
    # | `ledger.count` | | `{ok, count}` |
    #
    # `expected`: null (any), `"absent"` (the key must not exist) or a fact id. A conflict
    # answers `{ok: false, error_code: "conflict", error, store, key, expected, actual}`.
    module LedgerOps
      OPS = %w[ledger.write ledger.append ledger.commit ledger.read ledger.history ledger.count].freeze
      WRITE_KEYS = %i[store key value valid_time causation producer derivation schema_version].freeze
      APPEND_KEYS = %i[history event partition_key valid_time causation producer derivation schema_version].freeze

      module_function

      # The answer to one request; yields the number of facts committed.
      def run(store, op, request)
        case op
        when "ledger.write"
          fact = store.write(**write_args(request))
          yield 1 if block_given?
          { ok: true, fact: fact.to_h }
        when "ledger.append"
          fact = store.append(**request.slice(*APPEND_KEYS))
          yield 1 if block_given?
          { ok: true, fact: fact.to_h }
        when "ledger.commit"
          ops = request[:ops]
          raise ArgumentError, "ledger.commit needs ops: [...]" unless ops.is_a?(Array) && ops.all?(Hash)

          facts = store.write_batch(ops.map { |o| o[:op].to_s == "append" ? o.slice(*APPEND_KEYS) : write_args(o) })
          yield facts.size if block_given?
          { ok: true, facts: facts.map(&:to_h) }
        when "ledger.read"
          fact = store.read_fact(store: request[:store], key: request[:key], as_of: request[:as_of], valid_at: request[:valid_at])
          { ok: true, found: !fact.nil?, value: fact&.value, fact: fact&.to_h }
        when "ledger.history"
          facts = store.history(**request.slice(:store, :key, :since, :as_of))
          { ok: true, facts: facts.map(&:to_h) }
        when "ledger.count"
          { ok: true, count: store.fact_count }
        end
      rescue ConflictError => e
        { ok: false, error_code: "conflict", error: e.message, store: e.store.to_s, key: e.key,
          expected: e.expected, actual: e.actual }
      end

      def write_args(request)
        args = request.slice(*WRITE_KEYS)
        args[:expected] = expected(request[:expected]) if request.key?(:expected) && !request[:expected].nil?
        args
      end

      def expected(value)
        value == "absent" ? :none : value
      end
    end
  end
end
