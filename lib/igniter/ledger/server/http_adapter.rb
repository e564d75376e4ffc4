# frozen_string_literal: true

require "json"
require "uri"

module Igniter
  module Ledger
    # The HTTP front door over a Protocol::Interpreter. #rack_app is a plain Rack app
    # (`call(env)` → `[status, headers, body]`; no rack gem needed) that apps can mount in
    # their own Rack stack; #start_async serves it over the Rust HTTP listener in this
    # process (NativeHTTPServer: no puma needed), or with the pure-Ruby HTTPServer when
    # built with `engine: :ruby` (or $IGNITER_LEDGER_HTTP_ENGINE=ruby).
    #
    # Routes: `POST /v1/dispatch` (a wire envelope in, its response out); GET
    # `/v1/health`, `/v1/status`, `/v1/ready` (200/503), `/v1/metrics` (JSON, or
    # Prometheus text with `?format=prometheus` or `Accept: text/plain`),
    # `/v1/events/recent`, `/v1/metadata`, `/v1/compaction/activity?store&kind&since&limit`,
    # `/v1/events` (Server-Sent Events from the changefeed, resuming after `Last-Event-ID`
    # or `?cursor=N`, filtered by `?store=` / `?stores=a,b`; 409 `cursor_too_old` when the
    # ring moved past the cursor), and `GET /` (a status page with a live tail).
    # Unknown paths answer 404, wrong methods 405, all as JSON.
    #
    # token: a shared secret: every route but `/` then needs `Authorization: Bearer
    # <token>` (or `?token=` for EventSource clients), else 401.
    class HTTPAdapter
      JSON_HEADERS = { "Content-Type" => "application/json" }.freeze

      # The seconds between SSE keep-alive comments.
      HEARTBEAT_SECONDS = 15

      attr_reader :interpreter, :host, :port

      def initialize(interpreter:, port: 7300, host: "127.0.0.1", health_provider: nil, metrics_provider: nil,
                     status_provider: nil, events_provider: nil, changefeed_provider: nil, ready_provider: nil,
                     token: nil, max_body_bytes: 8 * 1024 * 1024,
                     engine: ENV.fetch("IGNITER_LEDGER_HTTP_ENGINE", "native"))
        raise ArgumentError, "engine: must be :native or :ruby, got #{engine.inspect}" unless %w[native ruby].include?(engine.to_s)

        @engine = engine.to_sym
        @interpreter = interpreter
        @port = port
        @host = host
        @health_provider = health_provider
        @metrics_provider = metrics_provider
        @status_provider = status_provider
        @events_provider = events_provider
        @changefeed_provider = changefeed_provider
        @ready_provider = ready_provider
        @token = token
        @max_body_bytes = max_body_bytes
      end

      def bind_address
        "#{@host}:#{@server ? @server.port : @port}"
      end

      # The Rack app (memoized).
      def rack_app
        @rack_app ||= App.new(self)
      end

      # Serves rack_app on a background thread; returns self.
      def start_async
        @server ||= (@engine == :ruby ? HTTPServer : NativeHTTPServer)
                    .new(rack_app, host: @host, port: @port, max_body_bytes: @max_body_bytes).start_async
        @port = @server.port
        self
      end

      # Serves on the calling thread until #stop.
      def start
        start_async
        sleep 0.1 until @server.nil?
        self
      end

      def stop
        server = @server
        @server = nil
        server&.stop
        self
      end

      # The Rack app: routes a request to a handler. Never raises.
      class App
        def initialize(adapter)
          @a = adapter
        end

        def call(env)
          method = env["REQUEST_METHOD"].to_s
          path = env["PATH_INFO"].to_s
          path = "/" if path.empty?
          route = ROUTES[path]
          return error(404, "not found: #{path}") unless route
          return error(405, "method #{method} not allowed on #{path}") unless route[0] == method
          return error(401, "unauthorized: a valid token is required") unless path == "/" || authorized?(env)

          __send__(route[1], env)
        rescue StandardError => e
          error(500, "internal error: #{e.class}: #{e.message}")
        end

        ROUTES = {
          "/" => %w[GET page],
          "/v1/dispatch" => %w[POST dispatch],
          "/v1/health" => %w[GET health],
          "/v1/status" => %w[GET status],
          "/v1/ready" => %w[GET ready],
          "/v1/metrics" => %w[GET metrics],
          "/v1/events/recent" => %w[GET recent_events],
          "/v1/events" => %w[GET events],
          "/v1/metadata" => %w[GET metadata],
          "/v1/compaction/activity" => %w[GET compaction_activity]
        }.freeze

        private

        def provider(name)
          @a.instance_variable_get(:"@#{name}_provider")
        end

        def interp
          @a.interpreter
        end

        def authorized?(env)
          token = @a.instance_variable_get(:@token)
          return true if token.nil?

          given = env["HTTP_AUTHORIZATION"].to_s[/\ABearer\s+(.+)\z/, 1] || query(env)["token"]
          !given.nil? && given.bytesize == token.bytesize &&
            given.bytes.zip(token.bytes).reduce(0) { |acc, (x, y)| acc | (x ^ y) }.zero?
        end

        def json(status, data, headers = {})
          [status, JSON_HEADERS.merge(headers), [JSON.generate(data)]]
        end

        def error(status, message, extra = {})
          json(status, { error: message }.merge(extra))
        end

        def query(env)
          URI.decode_www_form(env["QUERY_STRING"].to_s).to_h
        rescue ArgumentError
          {}
        end

        def dispatch(env)
          input = env["rack.input"]
          body = input ? input.read.to_s : ""
          max = @a.instance_variable_get(:@max_body_bytes)
          return error(413, "request body exceeds #{max} bytes") if max && body.bytesize > max

          begin
            parsed = JSON.parse(body, max_nesting: 100)
          rescue JSON::ParserError, EncodingError => e
            return error(400, "invalid JSON: #{e.message[0, 200]}")
          end
          return error(400, "invalid JSON: the envelope must be an object") unless parsed.is_a?(Hash)

          [200, JSON_HEADERS.dup, [interp.wire.dispatch_json(body)]]
        end

        def health(_env)
          base = { status: "ready", protocol: "igniter_store", schema_version: 1 }
          extra = provider(:health)&.call || {}
          json(200, base.merge(extra) { |k, b, e| k == :status ? e.to_s : e })
        end

        def status(_env)
          json(200, provider(:status)&.call || interp.observability_snapshot)
        end

        def ready(_env)
          ok = provider(:ready) ? provider(:ready).call : true
          json(ok ? 200 : 503, { ready: ok ? true : false, status: ok ? "ready" : "not_ready" })
        end

        def metrics(env)
          data = provider(:metrics)&.call || interp.observability_snapshot
          if query(env)["format"] == "prometheus" || env["HTTP_ACCEPT"].to_s.start_with?("text/plain")
            return [200, { "Content-Type" => "text/plain; version=0.0.4" }, [Prometheus.render(data)]]
          end

          json(200, data)
        end

        def recent_events(_env)
          events = provider(:events)&.call || []
          json(200, { events: events, count: events.size })
        end

        def metadata(_env)
          json(200, interp.metadata_snapshot)
        end

        def compaction_activity(env)
          q = query(env)
          args = { store: q["store"], kind: q["kind"] }
          %w[since limit].each do |name|
            next unless q.key?(name)

            value = name == "since" ? Float(q[name], exception: false) : Integer(q[name], 10, exception: false)
            return error(400, "#{name} must be a number, got #{q[name].inspect}") if value.nil?

            args[name.to_sym] = value
          end
          json(200, interp.compaction_activity(**args))
        end

        def events(env)
          feed = provider(:changefeed)&.call
          return error(503, "changefeed not configured") if feed.nil?

          q = query(env)
          raw = env["HTTP_LAST_EVENT_ID"] || q["cursor"]
          cursor = nil
          unless raw.nil? || raw.to_s.empty?
            seq = Integer(raw.to_s, 10, exception: false)
            return error(400, "cursor must be a non-negative integer, got #{raw.inspect}") if seq.nil? || seq.negative?

            cursor = { sequence: seq }
          end
          stores = (q["stores"] || q["store"]).to_s.split(",").map(&:strip).reject(&:empty?).map(&:to_sym)
          check = feed.replay(cursor: cursor, stores: stores, limit: 1)
          if check[:status] == :cursor_too_old
            return json(409, { status: "cursor_too_old", oldest_cursor: check[:oldest_cursor],
                               newest_cursor: check[:newest_cursor], dropped_total: check[:dropped_total] })
          end

          [200, { "Content-Type" => "text/event-stream", "Cache-Control" => "no-cache" },
           SSEBody.new(feed, cursor, stores)]
        end

        def page(_env)
          [200, { "Content-Type" => "text/html; charset=utf-8" }, [StatusPage::HTML]]
        end
      end
      private_constant :App

      # The body of one SSE response: the retained events after the cursor, then live
      # events, until #close (or the client goes away).
      class SSEBody
        def initialize(feed, cursor, stores)
          @feed = feed
          @cursor = cursor
          @stores = stores
          @queue = Queue.new
          @closed = false
        end

        def each
          return if @closed

          sub = @feed.subscribe(stores: @stores) { |event| @queue << event unless @queue.closed? }
          heartbeat = Thread.new do
            loop do
              sleep HEARTBEAT_SECONDS
              break if @queue.closed?

              @queue << :heartbeat
            end
          rescue ClosedQueueError
            nil
          end
          last = @cursor ? @cursor[:sequence] : 0
          cursor = @cursor
          loop do
            page = @feed.replay(cursor: cursor, stores: @stores, limit: 500)
            events = Array(page[:events])
            events.each do |event|
              yield frame(event)
              last = event.sequence
            end
            break if events.size < 500 || page[:status] != :ok

            cursor = { sequence: last }
          end
          while (item = @queue.pop)
            if item == :heartbeat
              yield ": keep-alive\n\n"
            elsif item.sequence > last
              yield frame(item)
              last = item.sequence
            end
          end
        ensure
          sub&.close
          heartbeat&.kill
          @queue.close
        end

        def close
          @closed = true
          @queue.close
        end

        private

        def frame(event)
          "id: #{event.sequence}\nevent: fact_committed\ndata: #{JSON.generate(event.to_h)}\n\n"
        end
      end
    end
  end
end
