# frozen_string_literal: true

require "digest"
require "json"

module Igniter
  module Ledger
    # A metadata-only description of the ledger as a TBackend adapter (what a host runtime
    # may bind to), built from a metadata snapshot and a descriptor snapshot. It
    # authorizes nothing and has no operational methods; `diagnostics` says whether it
    # meets a host's requirements. Hashes are `"sha256:" + hex` of canonical JSON (keys
    # sorted, Symbols as Strings), so key order never changes them.
    class TBackendAdapterDescriptor
      TBACKEND_OPS = {
        "read" => %w[read],
        "append" => %w[append],
        "replay" => %w[replay],
        "snapshot" => %w[metadata_snapshot descriptor_snapshot],
        "compact" => %w[compact],
        "subscribe" => %w[subscribe]
      }.freeze

      NON_AUTHORIZATION = {
        runtime_binding: false, ledger_reads: false, ledger_writes: false, ledger_append: false,
        ledger_replay: false, ledger_compact: false, ledger_subscribe: false, migration_execution: false
      }.freeze

      CURSOR_POLICY = {
        ordered: "forward", cursor_kinds: ["timestamp"].freeze, truncation_reported: true,
        tie_breaker: "timestamp_then_fact_id_required"
      }.freeze

      class << self
        def build(metadata_snapshot:, descriptor_snapshot:, schema_fingerprint: nil,
                  ledger_protocol_ops: Protocol::WireEnvelope::OPERATIONS)
          new(metadata_snapshot: metadata_snapshot, descriptor_snapshot: descriptor_snapshot,
              schema_fingerprint: schema_fingerprint, ledger_protocol_ops: ledger_protocol_ops)
        end

        # "sha256:" + the SHA-256 of `value` as canonical JSON.
        def canonical_hash(value)
          "sha256:#{Digest::SHA256.hexdigest(JSON.generate(canonical(value)))}"
        end

        private

        def canonical(value)
          case value
          when Hash then value.map { |k, v| [k.to_s, canonical(v)] }.sort_by(&:first).to_h
          when Array then value.map { |v| canonical(v) }
          when Symbol then value.to_s
          else value
          end
        end
      end

      attr_reader :supported_tbackend_ops, :hook_methods, :capabilities, :history_axes, :cursor_policy,
                  :schema_fingerprint, :descriptor_hash, :descriptor_registry_hash

      def initialize(metadata_snapshot:, descriptor_snapshot:, schema_fingerprint:, ledger_protocol_ops:)
        ops = Array(ledger_protocol_ops).map(&:to_s)
        histories = named(metadata_snapshot, :histories) + named(descriptor_snapshot, :histories)
        @schema_fingerprint = schema_fingerprint
        @supported_tbackend_ops = TBACKEND_OPS.select { |_, needs| needs.any? { |o| ops.include?(o) } }.keys.freeze
        @hook_methods = (["read_as_of"] + (histories.empty? ? [] : ["bihistory_at"])).freeze
        @capabilities = (["history_read"] + (histories.empty? ? [] : ["bihistory_read"])).freeze
        @history_axes = (["valid_time"] + (histories.empty? ? [] : ["transaction_time"])).freeze
        @cursor_policy = CURSOR_POLICY
        @descriptor_registry_hash = self.class.canonical_hash(descriptor_snapshot)
        body = {
          kind: "ledger_tbackend_adapter_descriptor",
          adapter_kind: "ledger_open_protocol",
          adapter_version: "0.1.0",
          contract_version: "tbackend.v0",
          protocol: "igniter_store",
          protocol_schema_version: 1,
          evidence_mode: "receipt_required",
          schema_fingerprint: schema_fingerprint,
          ledger_protocol_ops: ops.freeze,
          supported_tbackend_ops: @supported_tbackend_ops,
          hook_methods: @hook_methods,
          capabilities: @capabilities,
          history_axes: @history_axes,
          cursor_policy: @cursor_policy,
          non_authorization: NON_AUTHORIZATION,
          metadata_hash: self.class.canonical_hash(metadata_snapshot),
          descriptor_registry_hash: @descriptor_registry_hash
        }
        @descriptor_hash = self.class.canonical_hash(body)
        @payload = body.merge(descriptor_hash: @descriptor_hash).freeze
        freeze
      end

      def to_h
        @payload
      end

      # Whether this descriptor meets a host's requirements: status "ok" or "blocked",
      # with what is missing.
      def diagnostics(required_ops: [], required_hook_methods: [], required_capabilities: [], history_axes: [],
                      schema_fingerprint: nil)
        missing_ops = Array(required_ops).map(&:to_s) - @supported_tbackend_ops
        missing_hooks = Array(required_hook_methods).map(&:to_s) - @hook_methods
        missing_caps = Array(required_capabilities).map(&:to_s) - @capabilities
        missing_axes = Array(history_axes).map(&:to_s) - @history_axes
        match = schema_fingerprint.nil? || schema_fingerprint == @schema_fingerprint
        ok = [missing_ops, missing_hooks, missing_caps, missing_axes].all?(&:empty?) && match
        {
          kind: "ledger_tbackend_adapter_descriptor_diagnostics",
          status: ok ? "ok" : "blocked",
          missing_ops: missing_ops,
          missing_hook_methods: missing_hooks,
          missing_capabilities: missing_caps,
          missing_axes: missing_axes,
          schema_fingerprint_match: match,
          descriptor_hash: @descriptor_hash,
          descriptor_registry_hash: @descriptor_registry_hash
        }
      end

      private

      def named(snapshot, field)
        entries = snapshot.is_a?(Hash) ? (snapshot[field] || snapshot[field.to_s]) : nil
        case entries
        when Hash then entries.keys
        when Array then entries
        else []
        end
      end
    end
  end
end
