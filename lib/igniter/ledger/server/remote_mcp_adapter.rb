# frozen_string_literal: true

require "json"
require "net/http"
require "uri"
require "securerandom"

module Igniter
  module Ledger
    # MCPAdapter.remote(url): the MCP read tools over a server's `POST /v1/dispatch`
    # (an HTTPAdapter). Answers have the embedded adapter's shape
    # (`{schema_version:, request_id:, source_protocol_op:, status:, result:|error:}`);
    # `read` answers the value, `query` an Array of values, as embedded.
    class RemoteMCPAdapter
      # tool name => protocol op
      OPS = MCPAdapter::READ_TOOLS.to_h { |t| [t, t] }.merge(sync_profile: :sync_hub_profile).freeze

      attr_reader :url, :enabled_tools

      def initialize(url, enabled_tools: MCPAdapter::READ_TOOLS, token: nil, timeout: 30)
        @url = URI(url)
        raise ArgumentError, "MCPAdapter.remote needs an http:// URL, got #{url.inspect}" unless @url.is_a?(URI::HTTP)

        @enabled_tools = Array(enabled_tools).map(&:to_sym).freeze
        @token = token
        @timeout = timeout
      end

      def tool_list
        MCPAdapter.new(Protocol::Interpreter.new, enabled_tools: @enabled_tools).tool_list
      end

      def call_tool(name, arguments = nil, **kw)
        args = (arguments || kw).transform_keys(&:to_sym)
        request_id = args.delete(:request_id) || "mcp_#{SecureRandom.hex(8)}"
        tool = name.to_sym
        op = OPS[tool]
        return answer(request_id, tool, error: "unknown tool #{name.inspect}") if op.nil?
        return answer(request_id, op, error: "tool #{name} is not enabled") unless @enabled_tools.include?(tool)

        response = post({ protocol: "igniter_store", schema_version: 1, request_id: request_id, op: op, packet: args })
        if response[:status].to_s == "ok"
          answer(request_id, op, result: normalize(op, response[:result]))
        else
          answer(request_id, op, error: "remote dispatch error: #{response[:error]}")
        end
      rescue StandardError => e
        answer(request_id, op || tool, error: "remote dispatch failed: #{e.class}: #{e.message}")
      end

      private

      def answer(request_id, op, result: nil, error: nil)
        out = { schema_version: 1, request_id: request_id, source_protocol_op: op&.to_sym,
                status: error ? :error : :ok }
        error ? out.merge(error: error) : out.merge(result: result)
      end

      def normalize(op, result)
        case op
        when :read then result.is_a?(Hash) && result[:found] ? result[:value] : nil
        when :query, :resolve then result.is_a?(Hash) && result.key?(:results) ? result[:results] : result
        else result
        end
      end

      def post(envelope)
        http = Net::HTTP.new(@url.host, @url.port)
        http.open_timeout = @timeout
        http.read_timeout = @timeout
        request = Net::HTTP::Post.new(@url.request_uri, "Content-Type" => "application/json")
        request["Authorization"] = "Bearer #{@token}" if @token
        request.body = JSON.generate(envelope)
        response = http.request(request)
        raise "HTTP #{response.code}: #{response.body.to_s[0, 200]}" unless response.code == "200"

        JSON.parse(response.body, symbolize_names: true)
      end
    end
  end
end
