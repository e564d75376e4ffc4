# frozen_string_literal: true

module Igniter
  module Ledger
    # The reference's in-process MCP tool surface over a store or an interpreter:
    # `tool_list` and `call_tool`. The tools, their JSON Schemas, their bounds and their
    # answers come from the Rust core (the same catalogue the `igniter-ledger mcp` stdio
    # server serves). Read tools only by default; write tools (WRITE_TOOLS) only when
    # named in `enabled_tools:`.
    class MCPAdapter
      READ_TOOLS = %i[
        metadata_snapshot descriptor_snapshot observability_snapshot read query resolve causation_chain
        lineage fact_ref replay sync_profile storage_stats segment_manifest compaction_activity
      ].freeze

      # Tools that write: never enabled unless named explicitly.
      WRITE_TOOLS = %i[write append write_fact register_descriptor].freeze

      # The most records one call answers.
      MAX_LIMIT = 1000

      class << self
        # The same tools over a remote server's `POST /v1/dispatch` (see RemoteMCPAdapter).
        def remote(url, **options)
          RemoteMCPAdapter.new(url, **options)
        end
      end

      attr_reader :interpreter, :enabled_tools

      def initialize(store_or_interpreter, enabled_tools: READ_TOOLS)
        @interpreter =
          case store_or_interpreter
          when Protocol::Interpreter then store_or_interpreter
          when LedgerStore then store_or_interpreter.protocol
          else
            raise ArgumentError,
                  "MCPAdapter expects an IgniterStore or Protocol::Interpreter, got #{store_or_interpreter.class}"
          end
        names = Array(enabled_tools).map(&:to_sym)
        unknown = names - READ_TOOLS - WRITE_TOOLS
        raise ArgumentError, "unknown MCP tools: #{unknown.join(", ")}" unless unknown.empty?

        @enabled_tools = names.uniq.freeze
        @names = @enabled_tools.map(&:to_s).freeze
      end

      # [{name:, description:, input_schema:}, ...] for the enabled tools.
      def tool_list
        @tool_list ||= @interpreter.__send__(:_mcp_tools, @names).freeze
      end

      # Calls a tool; answers {schema_version:, request_id:, source_protocol_op:, status:,
      # result:|error:}. Never raises for bad arguments.
      def call_tool(name, arguments = nil, **kw)
        @interpreter.__send__(:_mcp_call, @names, name, arguments || kw)
      rescue StandardError => e
        { schema_version: 1, request_id: (arguments || kw)[:request_id], source_protocol_op: nil,
          status: :error, error: "#{e.class}: #{e.message}" }
      end
    end
  end
end
