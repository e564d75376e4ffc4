# frozen_string_literal: true

require "stringio"
require "json"

module Igniter
  module Ledger
    # Serves a Rack app over the Rust HTTP listener (NativeHTTPBridge: tokio and hyper,
    # in this process): HTTPAdapter#start_async uses it, so no puma is needed. The
    # listener parses HTTP and enforces the limits (connections, header read timeout,
    # body size: 413); `workers` Ruby threads take requests (waiting with the GVL
    # released) and call the app. A streamed body (anything but an Array, e.g. the SSE
    # stream) is sent chunk by chunk from a thread of its own until it ends or the client
    # goes away. Same interface as HTTPServer, the pure-Ruby fallback.
    class NativeHTTPServer
      attr_reader :host, :port

      def initialize(app, host: "127.0.0.1", port: 0, max_body_bytes: 8 * 1024 * 1024, max_connections: 256,
                     header_read_timeout: 10, workers: 4)
        @app = app
        @host = host
        @bridge = NativeHTTPBridge._start("#{host}:#{port}", max_connections, Float(header_read_timeout),
                                          max_body_bytes)
        @port = @bridge.port
        @workers_count = workers
        @streams = {}
        @lock = Mutex.new
        @stopped = false
      end

      def bind_address
        "#{@host}:#{@port}"
      end

      def start_async
        @lock.synchronize do
          @workers ||= Array.new(@workers_count) do |i|
            Thread.new do
              Thread.current.name = "igniter-ledger http #{i}"
              Thread.current.report_on_exception = false
              work until @stopped
            end
          end
        end
        self
      end

      # Streams being sent now.
      def connection_count
        @lock.synchronize { @streams.size }
      end

      def stop(timeout: 1)
        @stopped = true
        streams = @lock.synchronize { @streams.keys }
        streams.each { |body| body.close if body.respond_to?(:close) }
        @bridge._stop(Float(timeout))
        (@workers || []).each { |t| t.join(2) unless t == Thread.current }
        @lock.synchronize { @streams.values }.each { |t| t.join(2) }
        self
      end

      private

      def work
        req = @bridge._next(0.2)
        serve(*req) if req
      rescue StandardError => e
        warn "igniter-ledger http: #{e.class}: #{e.message}" if $VERBOSE
      end

      def serve(method, path, query, headers, body, remote, responder)
        status, out, payload = begin
          @app.call(env(method, path, query, headers, body, remote))
        rescue StandardError => e
          [500, { "Content-Type" => "application/json" }, [JSON.generate({ error: "internal error: #{e.class}" })]]
        end
        pairs = out.to_h.map { |k, v| [k.to_s, v.to_s] }
        if payload.is_a?(Array)
          responder.start(Integer(status), pairs)
          payload.each { |part| responder.write(part.to_s) }
          responder.finish
        else
          pairs << ["Cache-Control", "no-cache"] unless pairs.any? { |k, _| k.casecmp?("cache-control") }
          responder.start(Integer(status), pairs)
          stream(payload, responder)
        end
      end

      def stream(payload, responder)
        @lock.synchronize do
          @streams[payload] = Thread.new do
            Thread.current.report_on_exception = false
            begin
              payload.each { |chunk| break unless responder.write(chunk.to_s) }
            ensure
              payload.close if payload.respond_to?(:close)
              responder.finish
              @lock.synchronize { @streams.delete(payload) }
            end
          end
        end
      end

      def env(method, path, query, headers, body, remote)
        e = {
          "REQUEST_METHOD" => method, "SCRIPT_NAME" => "", "PATH_INFO" => path, "QUERY_STRING" => query,
          "SERVER_NAME" => @host, "SERVER_PORT" => @port.to_s, "SERVER_PROTOCOL" => "HTTP/1.1",
          "REMOTE_ADDR" => remote, "rack.input" => StringIO.new(body), "rack.errors" => $stderr,
          "rack.url_scheme" => "http", "rack.version" => [1, 3], "rack.multithread" => true,
          "rack.multiprocess" => false, "rack.run_once" => false
        }
        headers.each do |name, value|
          key = name.upcase.tr("-", "_")
          case key
          when "CONTENT_TYPE", "CONTENT_LENGTH" then e[key] = value
          else e["HTTP_#{key}"] = value
          end
        end
        e
      end
    end
  end
end
