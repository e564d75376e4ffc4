# frozen_string_literal: true

require "socket"

module Igniter
  module Ledger
    # Serves protocol envelopes (`{protocol: "igniter_store", schema_version: 1,
    # request_id:, op:, packet:}`) in CRC frames over TCP or a unix socket: one response
    # frame per request frame, many requests per connection. A malformed frame gets an
    # error frame and the connection is closed.
    class TCPAdapter
      include WireProtocol

      attr_reader :interpreter, :host, :port, :transport

      def initialize(interpreter:, port: 7401, host: "127.0.0.1", transport: :tcp, max_frame_bytes: MAX_FRAME_BYTES)
        @interpreter = interpreter
        @port = port
        @host = host
        @transport = transport.to_sym
        @max_frame_bytes = max_frame_bytes
        @clients = {}
        @lock = Mutex.new
      end

      # "host:port" for TCP; the socket path (host:) for unix.
      def bind_address
        @transport == :unix ? @host.to_s : "#{@host}:#{@port}"
      end

      # Binds and serves on background threads; returns self.
      def start_async
        @listener ||=
          if @transport == :unix
            File.delete(@host) if File.socket?(@host)
            UNIXServer.new(@host)
          else
            TCPServer.new(@host, @port).tap { |s| @port = s.local_address.ip_port }
          end
        @thread ||= Thread.new do
          Thread.current.report_on_exception = false
          loop do
            client = @listener.accept
            t = Thread.new { serve(client) }
            @lock.synchronize { @clients[client] = t }
          end
        rescue ::IOError, SystemCallError
          nil
        end
        self
      end

      # Serves on the calling thread until #stop.
      def start
        start_async
        @thread.join
        self
      end

      def stop
        @listener&.close unless @listener.nil? || @listener.closed?
        clients = @lock.synchronize { @clients.keys }
        clients.each { |c| c.close rescue nil } # rubocop:disable Style/RescueModifier
        @thread&.join(2)
        File.delete(@host) if @transport == :unix && File.socket?(@host.to_s)
        self
      rescue ::IOError, SystemCallError
        self
      end

      private

      def serve(client)
        loop do
          body = read_frame(client, max_bytes: @max_frame_bytes)
          break if body.nil?

          client.write(encode_frame(@interpreter.wire.dispatch_json(body)))
        end
      rescue FrameError => e
        begin
          client.write(encode_frame(JSON.generate({ protocol: "igniter_store", schema_version: 1, status: "error",
                                                    error: "bad frame: #{e.message}" })))
        rescue ::IOError, SystemCallError
          nil
        end
      rescue ::IOError, SystemCallError
        nil
      ensure
        client.close rescue nil # rubocop:disable Style/RescueModifier
        @lock.synchronize { @clients.delete(client) }
      end
    end
  end
end
