# frozen_string_literal: true

require "socket"
require "stringio"

module Igniter
  module Ledger
    # A small HTTP/1.1 server for a Rack app (HTTPAdapter#start_async serves its
    # rack_app with it, so no puma is needed). One thread per connection; keep-alive for
    # ordinary responses; a `text/event-stream` response is streamed chunk by chunk until
    # the client goes away or the body ends.
    #
    # Limits: request line and headers (max_header_bytes), body (max_body_bytes: 413),
    # connections (max_connections: 503), idle keep-alive connections (idle_timeout) and
    # slow clients (read_timeout: a request must arrive whole within it). A malformed
    # request gets 400 and the connection is closed.
    class HTTPServer
      STATUS_TEXT = {
        200 => "OK", 204 => "No Content", 400 => "Bad Request", 401 => "Unauthorized", 404 => "Not Found",
        405 => "Method Not Allowed", 408 => "Request Timeout", 409 => "Conflict", 411 => "Length Required",
        413 => "Payload Too Large", 431 => "Request Header Fields Too Large", 500 => "Internal Server Error",
        503 => "Service Unavailable"
      }.freeze

      attr_reader :host, :port

      def initialize(app, host: "127.0.0.1", port: 0, max_body_bytes: 8 * 1024 * 1024, max_header_bytes: 32 * 1024,
                     max_connections: 256, idle_timeout: 30, read_timeout: 10)
        @app = app
        @host = host
        @max_body_bytes = max_body_bytes
        @max_header_bytes = max_header_bytes
        @max_connections = max_connections
        @idle_timeout = idle_timeout
        @read_timeout = read_timeout
        @listener = TCPServer.new(host, port)
        @port = @listener.local_address.ip_port
        @clients = {}
        @lock = Mutex.new
      end

      def bind_address
        "#{@host}:#{@port}"
      end

      def start_async
        @thread ||= Thread.new do
          Thread.current.report_on_exception = false
          accept_loop
        end
        self
      end

      def stop
        @listener.close unless @listener.closed?
        clients = @lock.synchronize { @clients.to_a }
        clients.each do |c, body|
          body.close if body.respond_to?(:close)
          c.close
        rescue ::IOError, SystemCallError
          nil
        end
        @thread&.join(2)
        self
      rescue ::IOError, SystemCallError
        self
      end

      def connection_count
        @lock.synchronize { @clients.size }
      end

      private

      def accept_loop
        loop do
          client = @listener.accept
          full = @lock.synchronize { @clients.size >= @max_connections }
          if full
            write_simple(client, 503, '{"error":"too many connections"}')
            client.close
            next
          end
          @lock.synchronize { @clients[client] = true }
          Thread.new(client) do |c|
            Thread.current.report_on_exception = false
            serve(c)
          end
        end
      rescue ::IOError, SystemCallError
        nil
      end

      def serve(client)
        remote = (client.remote_address.ip_address rescue "unknown") # rubocop:disable Style/RescueModifier
        first = true
        loop do
          break unless client.wait_readable(first ? @read_timeout : @idle_timeout)

          first = false
          request = read_request(client)
          break if request.nil?

          if request.is_a?(Integer)
            write_simple(client, request, JSON.generate({ error: STATUS_TEXT.fetch(request, "error").downcase }))
            linger(client)
            break
          end
          request["REMOTE_ADDR"] = remote
          break unless respond(client, request)
        end
      rescue ::IOError, SystemCallError
        nil
      ensure
        client.close rescue nil # rubocop:disable Style/RescueModifier
        @lock.synchronize { @clients.delete(client) }
      end

      # A Rack env, nil at a clean end of stream, or an Integer status for a bad request.
      def read_request(client)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @read_timeout
        head = +""
        until (idx = head.index("\r\n\r\n"))
          return (head.empty? ? nil : 400) unless wait(client, deadline)

          chunk = client.read_nonblock(4096, exception: false)
          return (head.empty? ? nil : 400) if chunk.nil?
          next if chunk == :wait_readable

          head << chunk
          return 431 if head.bytesize > @max_header_bytes && !head.index("\r\n\r\n")
        end
        rest = head.byteslice(idx + 4..)
        lines = head.byteslice(0, idx).split("\r\n")
        method, target, version = lines.shift.to_s.split(" ", 3)
        return 400 unless method&.match?(/\A[A-Z]+\z/) && target&.start_with?("/") && version&.start_with?("HTTP/1.")

        headers = {}
        lines.each do |line|
          name, value = line.split(":", 2)
          return 400 if value.nil? || name.empty? || name.match?(/\s/)

          headers[name.downcase] = value.strip
        end
        return 411 if headers["transfer-encoding"]

        length = headers["content-length"]
        return 400 if length && length !~ /\A\d+\z/

        length = length.to_i
        return 413 if length > @max_body_bytes

        body = rest.b
        while body.bytesize < length
          return 408 unless wait(client, deadline)

          chunk = client.read_nonblock(length - body.bytesize, exception: false)
          return 400 if chunk.nil?
          next if chunk == :wait_readable

          body << chunk
        end
        build_env(method, target, version, headers, body.byteslice(0, length))
      end

      def wait(client, deadline)
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        left.positive? && client.wait_readable(left)
      end

      def build_env(method, target, version, headers, body)
        path, _, query = target.partition("?")
        env = {
          "REQUEST_METHOD" => method, "SCRIPT_NAME" => "", "PATH_INFO" => path, "QUERY_STRING" => query,
          "SERVER_NAME" => @host, "SERVER_PORT" => @port.to_s, "SERVER_PROTOCOL" => version,
          "rack.input" => StringIO.new(body), "rack.errors" => $stderr, "rack.url_scheme" => "http",
          "rack.version" => [1, 3], "rack.multithread" => true, "rack.multiprocess" => false,
          "rack.run_once" => false, "igniter.keep_alive" => keep_alive?(version, headers)
        }
        headers.each do |name, value|
          key = name.upcase.tr("-", "_")
          case key
          when "CONTENT_TYPE", "CONTENT_LENGTH" then env[key] = value
          else env["HTTP_#{key}"] = value
          end
        end
        env
      end

      def keep_alive?(version, headers)
        conn = headers["connection"].to_s.downcase
        version == "HTTP/1.1" ? conn != "close" : conn == "keep-alive"
      end

      # Writes the response; true when the connection stays open for another request.
      def respond(client, env)
        status, headers, body = begin
          @app.call(env)
        rescue StandardError => e
          [500, { "Content-Type" => "application/json" }, [JSON.generate({ error: "internal error: #{e.class}" })]]
        end
        headers = headers.to_h
        if headers.any? { |k, v| k.casecmp?("content-type") && v.to_s.start_with?("text/event-stream") }
          stream(client, status, headers, body)
          return false
        end

        payload = +""
        body.each { |part| payload << part.to_s.b }
        body.close if body.respond_to?(:close)
        keep = env["igniter.keep_alive"]
        out = headers.reject { |k, _| k.casecmp?("content-length") || k.casecmp?("connection") }
        out["Content-Length"] = payload.bytesize.to_s
        out["Connection"] = keep ? "keep-alive" : "close"
        client.write(head(status, out) << payload)
        keep
      end

      def stream(client, status, headers, body)
        out = headers.reject { |k, _| k.casecmp?("content-length") || k.casecmp?("connection") }
        out["Connection"] = "close"
        out["Cache-Control"] ||= "no-cache"
        @lock.synchronize { @clients[client] = body if @clients.key?(client) }
        client.write(head(status, out))
        body.each do |chunk|
          client.write(chunk)
        rescue ::IOError, SystemCallError
          body.close if body.respond_to?(:close)
          break
        end
      ensure
        body.close if body.respond_to?(:close)
      end

      def head(status, headers)
        text = +"HTTP/1.1 #{status} #{STATUS_TEXT.fetch(status, "Status")}\r\n"
        headers.each { |k, v| text << "#{k}: #{v}\r\n" }
        text << "\r\n"
        text.b
      end

      # Half-closes and reads what the client still sends (briefly), so that closing with
      # unread input does not reset the connection before the client reads the answer.
      def linger(client)
        client.close_write
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.5
        drained = 0
        while drained < 1024 * 1024 && wait(client, deadline)
          chunk = client.read_nonblock(16_384, exception: false)
          break if chunk.nil?

          drained += chunk.bytesize if chunk.is_a?(String)
        end
      rescue ::IOError, SystemCallError
        nil
      end

      def write_simple(client, status, body)
        client.write(head(status, { "Content-Type" => "application/json", "Content-Length" => body.bytesize.to_s,
                                    "Connection" => "close" }) << body)
      rescue ::IOError, SystemCallError
        nil
      end
    end
  end
end
