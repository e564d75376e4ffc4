# frozen_string_literal: true

require "socket"
require "json"
require "timeout"

require_relative "server/wire_protocol"
require_relative "server/config"
require_relative "server/logger"
require_relative "server/metrics"
require_relative "server/value_codec"
require_relative "server/remote_calls"
require_relative "server/ledger_ops"
require_relative "server/store_server"
require_relative "server/native_server"
require_relative "server/network_backend"
require_relative "server/tcp_adapter"
require_relative "server/http_server"
require_relative "server/native_http"
require_relative "server/prometheus"
require_relative "server/status_page"
require_relative "server/http_adapter"
require_relative "server/remote_mcp_adapter"
require_relative "server/remote_store"

module Igniter
  module Ledger
    # The 0.5.2 defaults, named as the reference's ChangefeedBuffer names them.
    class ChangefeedBuffer
      DEFAULT_MAX_SIZE = 1000 unless const_defined?(:DEFAULT_MAX_SIZE, false)
      DEFAULT_SUBSCRIBER_QUEUE_SIZE = 100 unless const_defined?(:DEFAULT_SUBSCRIBER_QUEUE_SIZE, false)
    end
  end
end
