# frozen_string_literal: true

module Igniter
  module Ledger
    # A server's settings (the reference's ServerConfig): every key has a default and an
    # unknown key raises ArgumentError. `changefeed:` is the ChangefeedBuffer's keywords.
    #
    #   ServerConfig.new(host: "127.0.0.1", port: 7400, backend: :file, path: "app.wal")
    class ServerConfig
      DEFAULTS = {
        host: "127.0.0.1",
        port: 7400,
        transport: :tcp,
        backend: :memory,
        path: nil,
        durability: :fsync,
        log_io: nil,
        log_level: :info,
        pid_file: nil,
        drain_timeout: 5,
        max_connections: nil,
        token: nil,
        max_frame_bytes: 16 * 1024 * 1024,
        idle_timeout: nil,
        slow_timeout: 10,
        changefeed: {}
      }.freeze

      TRANSPORTS = %i[tcp unix].freeze
      BACKENDS = %i[memory file].freeze

      attr_reader(*DEFAULTS.keys)

      def initialize(**options)
        unknown = options.keys - DEFAULTS.keys
        unless unknown.empty?
          raise ArgumentError, "unknown ServerConfig key#{"s" if unknown.size > 1}: #{unknown.map(&:inspect).join(", ")} " \
                               "(known: #{DEFAULTS.keys.join(", ")})"
        end

        DEFAULTS.merge(options).each { |k, v| instance_variable_set(:"@#{k}", v) }
        @transport = @transport.to_sym
        @backend = @backend.to_sym
        @log_level = @log_level.to_sym
        @changefeed ||= {}
        validate!
      end

      # "host:port" for TCP; the socket path for a unix socket.
      def bind_address
        transport == :unix ? (path_for_unix || host).to_s : "#{host}:#{port}"
      end

      def to_h
        DEFAULTS.keys.to_h { |k| [k, public_send(k)] }
      end

      private

      def path_for_unix
        host if host.to_s.include?("/")
      end

      def validate!
        raise ArgumentError, "transport: must be one of #{TRANSPORTS.inspect}, got #{@transport.inspect}" unless TRANSPORTS.include?(@transport)
        raise ArgumentError, "backend: must be one of #{BACKENDS.inspect}, got #{@backend.inspect}" unless BACKENDS.include?(@backend)
        raise ArgumentError, "backend: :file needs path:" if @backend == :file && (@path.nil? || @path.to_s.empty?)
        raise ArgumentError, "port: must be an Integer in 0..65535, got #{@port.inspect}" unless @port.is_a?(Integer) && @port.between?(0, 65_535)
        raise ArgumentError, "changefeed: must be a Hash, got #{@changefeed.class}" unless @changefeed.is_a?(Hash)
        unless @max_connections.nil? || (@max_connections.is_a?(Integer) && @max_connections.positive?)
          raise ArgumentError, "max_connections: must be a positive Integer or nil, got #{@max_connections.inspect}"
        end
        raise ArgumentError, "drain_timeout: must be a non-negative Numeric, got #{@drain_timeout.inspect}" unless @drain_timeout.is_a?(Numeric) && !@drain_timeout.negative?
        raise ArgumentError, "max_frame_bytes: must be a positive Integer, got #{@max_frame_bytes.inspect}" unless @max_frame_bytes.is_a?(Integer) && @max_frame_bytes.positive?
      end
    end
  end
end
