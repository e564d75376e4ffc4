# frozen_string_literal: true

require "securerandom"

require_relative "protocol/receipt"
require_relative "protocol/sync_profile"
require_relative "protocol/wire_envelope"
require_relative "protocol/interpreter"
require_relative "protocol/mcp_adapter"
require_relative "protocol/contractable_receipt_sink"
require_relative "protocol/tbackend_adapter_descriptor"

module Igniter
  module Ledger
    # The Ledger Open Protocol (interpreter in the Rust core): `Protocol.new(store)`,
    # `store.protocol`, `store.register_descriptor(packet)`.
    module Protocol
      # An Interpreter over `store` (a new in-memory store when nil).
      def self.new(store = nil)
        Interpreter.new(store)
      end
    end

    class LedgerStore
      # This store's protocol interpreter (memoized).
      def protocol
        @protocol ||= Protocol::Interpreter.new(self)
      end

      # Registers a descriptor through #protocol; answers a Protocol::Receipt.
      def register_descriptor(packet)
        protocol.register(packet)
      end
    end
  end
end
