# frozen_string_literal: true

module Igniter
  module Ledger
    module Protocol
      # The wire envelope: `{protocol: :igniter_store, schema_version: 1, request_id:, op:,
      # packet:}` in, `{protocol:, schema_version:, request_id:, status: :ok|:error,
      # result:|error:}` out. Never raises. The Rust core validates and dispatches;
      # receipts come back as Receipt objects.
      class WireEnvelope
        OPERATIONS = %i[
          register_descriptor write append write_fact read query resolve causation_chain lineage fact_ref
          replay sync_hub_profile metadata_snapshot descriptor_snapshot observability_snapshot storage_stats
          segment_manifest compaction_activity
        ].freeze

        # Operations answering a Receipt.
        RECEIPT_OPERATIONS = %i[register_descriptor write append write_fact].freeze

        attr_reader :interpreter

        def initialize(interpreter)
          @interpreter = interpreter
        end

        def dispatch(envelope)
          @interpreter.__send__(:_dispatch, envelope)
        rescue StandardError => e
          # The core never raises here; this guards the Ruby glue itself.
          { protocol: :igniter_store, schema_version: 1,
            request_id: (envelope[:request_id] if envelope.is_a?(Hash)), status: :error,
            error: "internal error: #{e.class}: #{e.message}" }
        end

        # A JSON envelope in, a JSON response out (what the transports send).
        def dispatch_json(text)
          @interpreter.dispatch_json(text.to_s)
        end
      end
    end
  end
end
