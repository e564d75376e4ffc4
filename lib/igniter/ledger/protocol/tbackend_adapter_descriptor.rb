# frozen_string_literal: true

module Igniter
  module Ledger
    # A metadata-only description of the ledger as a TBackend adapter (what a host runtime
    # may bind to), built from a metadata snapshot and a descriptor snapshot. It
    # authorizes nothing and has no operational methods; `diagnostics` says whether it
    # meets a host's requirements. Built by the Rust core
    # (`igniter_ledger::protocol::TBackendAdapterDescriptor`): hashes are
    # `"sha256:" + hex` of canonical JSON (keys sorted, Symbols as strings).
    class TBackendAdapterDescriptor
      class << self
        def build(metadata_snapshot:, descriptor_snapshot:, schema_fingerprint: nil,
                  ledger_protocol_ops: Protocol::WireEnvelope::OPERATIONS)
          new(Protocol._tbackend_build(metadata_snapshot, descriptor_snapshot, schema_fingerprint,
                                       Array(ledger_protocol_ops)))
        end
      end
      private_class_method :new

      def initialize(payload)
        @payload = payload
        freeze
      end

      # The frozen payload.
      def to_h
        @payload
      end

      %i[supported_tbackend_ops hook_methods capabilities history_axes cursor_policy schema_fingerprint
         descriptor_hash descriptor_registry_hash].each do |name|
        define_method(name) { @payload[name] }
      end

      # {kind:, status: "ok"|"blocked", missing_ops:, missing_hook_methods:,
      # missing_capabilities:, missing_axes:, schema_fingerprint_match:, descriptor_hash:,
      # descriptor_registry_hash:}
      def diagnostics(required_ops: [], required_hook_methods: [], required_capabilities: [], history_axes: [],
                      schema_fingerprint: nil)
        Protocol._tbackend_diagnostics(@payload, Array(required_ops), Array(required_hook_methods),
                                       Array(required_capabilities), Array(history_axes), schema_fingerprint)
      end
    end
  end
end
