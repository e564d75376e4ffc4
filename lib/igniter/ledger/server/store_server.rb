# frozen_string_literal: true

require "socket"
require "json"
require "fileutils"

module Igniter
  module Ledger
    # A ledger server (the reference's StoreServer / LedgerServer): one process owns the
    # ledger, and many processes share it over a TCP or unix socket.
    #
    #   server = Igniter::Ledger::StoreServer.new(address: "127.0.0.1:7400", backend: :file, path: "app.wal")
    #   server.start_async
    #   ...
    #   server.stop
    #
    # The socket is bound in `new` (wait_until_ready answers at once). Each connection
    # sends CRC frames (WireProtocol) carrying JSON requests:
    # - the reference's legacy ops: `{op: "write_fact", fact:}`, `replay` → `{facts:}`,
    #   `write_snapshot`, `stats`, `server_status`, `ping`, `close`, `subscribe{stores:}`
    #   (ack, then `{event: "fact_written", fact:}` pushes); an error is
    #   `{ok: false, error_code:, error:}`;
    # - protocol envelopes (`{protocol: "igniter_store", op:, packet:, ...}`), answered by
    #   the store's Protocol::Interpreter;
    # - `{op: "call", ...}`: the remote store's calls (see Igniter::Ledger.connect);
    # - the `ledger.*` ops in plain JSON, for the Rust client (see LedgerOps).
    #
    # Writes arriving over the network run in this Ruby process, on the server's store:
    # derivation rules, consumers and the changefeed see them like local writes.
    #
    # Safe by default: binds 127.0.0.1; `token:` makes every connection authenticate
    # (`{op: "auth", token:}` first, or `token:` in each request); frames over
    # `max_frame_bytes` and malformed frames get an error response and the connection is
    # closed; `max_connections:` refuses extra connections; `idle_timeout:` closes idle
    # ones; a frame must arrive whole within `slow_timeout:` seconds of its first byte.
    class StoreServer
      include WireProtocol

      attr_reader :config, :logger, :metrics, :changefeed, :store, :recent_events

      # Keywords as the reference's: host:, port:, transport: (:tcp | :unix), backend:
      # (:memory | :file), path:, logger:, pid_file:, drain_timeout:, max_connections:,
      # config: (a ServerConfig; explicit keywords win over it), address: ("host:port",
      # or a socket path for :unix), metrics_thresholds:, slow_op_threshold_ms:,
      # max_recent_events:, changefeed: (merged over config.changefeed); and durability:,
      # token:, max_frame_bytes:, idle_timeout:, slow_timeout:.
      def initialize(host: nil, port: nil, transport: nil, backend: nil, path: nil, logger: nil, pid_file: nil,
                     drain_timeout: nil, max_connections: nil, config: nil, address: nil, metrics_thresholds: {},
                     slow_op_threshold_ms: nil, max_recent_events: 100, changefeed: nil, durability: nil, token: nil,
                     max_frame_bytes: nil, idle_timeout: nil, slow_timeout: nil, store: nil)
        base = (config || ServerConfig.new).to_h
        explicit = { host: host, port: port, transport: transport, backend: backend, path: path, pid_file: pid_file,
                     drain_timeout: drain_timeout, max_connections: max_connections, durability: durability,
                     token: token, max_frame_bytes: max_frame_bytes, idle_timeout: idle_timeout,
                     slow_timeout: slow_timeout }.compact
        explicit.merge!(parse_address(address, explicit[:transport] || base[:transport])) if address
        explicit[:changefeed] = (base[:changefeed] || {}).merge(changefeed) if changefeed
        @config = ServerConfig.new(**base.merge(explicit))
        @logger = logger || ServerLogger.new(@config.log_io, @config.log_level)
        @metrics = ServerMetrics.new(thresholds: metrics_thresholds, slow_op_threshold_ms: slow_op_threshold_ms)
        @recent_events = EventRing.new(max_recent_events)
        @changefeed = ChangefeedBuffer.new(**@config.changefeed)
        @lock = Mutex.new
        @cond = ConditionVariable.new
        @connections = {}
        @in_flight = 0
        @state = :ready
        @owns_store = store.nil?
        @store = store || open_store
        @listener = bind
        @port = @listener.local_address.ip_port if @config.transport == :tcp
        write_pid_file
        @logger.info("Listening on #{bind_address} (#{@config.transport}, backend #{@config.backend})")
        emit_event(:server_start, bind_address: bind_address, transport: @config.transport.to_s,
                                  backend: @config.backend.to_s)
      rescue StandardError
        @listener&.close
        @store&.close if @owns_store
        raise
      end

      # "host:port" for TCP (the bound port when 0 was asked), the socket path for unix.
      def bind_address
        return @config.bind_address if @config.transport == :unix

        "#{@config.host}:#{port}"
      end

      # The TCP port (the bound one when 0 was asked).
      def port
        @port || @config.port
      end

      # The protocol interpreter over this server's store (the store HTTP/TCP adapters of
      # start_with_adapters dispatch to).
      def protocol
        @store.protocol
      end

      # Serves connections on the calling thread until stop/drain.
      def start
        accept_loop
        # Stopped from another thread (a signal's drain): return once it has finished.
        @lock.synchronize { @cond.wait(@lock, 1) until @state == :stopped }
        self
      end

      # Serves on a background thread; returns self.
      def start_async
        @lock.synchronize do
          @accept_thread ||= Thread.new do
            Thread.current.name = "igniter-ledger accept"
            Thread.current.report_on_exception = false
            accept_loop
          end
        end
        self
      end

      # Like #start, draining on SIGTERM/SIGINT (what the executables run).
      def start_foreground
        %w[TERM INT].each do |sig|
          Signal.trap(sig) { Thread.new { drain } }
        end
        start
      end

      # Returns once the socket is listening (it is from `new` on); raises after
      # `timeout` seconds otherwise.
      def wait_until_ready(timeout: 5)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        @lock.synchronize do
          until ready?
            left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
            raise Timeout::Error, "server not ready after #{timeout}s" if left <= 0 || @state == :stopped

            @cond.wait(@lock, left)
          end
        end
        self
      end

      def ready?
        @state == :ready && !@listener.closed?
      end

      def draining?
        @state == :draining
      end

      def stopped?
        @state == :stopped
      end

      # Stops accepting, closes every connection (after its request in progress, up to
      # `timeout` seconds), closes the store it opened and removes the pid file.
      def stop(timeout: nil)
        timeout ||= @config.drain_timeout
        conns = nil
        @lock.synchronize do
          return self if @state == :stopped

          @state = :stopping
          conns = @connections.values
        end
        close_listener
        wait_in_flight(timeout)
        conns.each { |c| c.close_socket }
        conns.each { |c| c.thread&.join(timeout) unless c.thread == Thread.current }
        @accept_thread&.join(timeout) unless @accept_thread == Thread.current
        @adapters&.each { |a| a.stop rescue nil } # rubocop:disable Style/RescueModifier
        @store.close if @owns_store && !@store.closed?
        remove_pid_file
        @lock.synchronize do
          @state = :stopped
          @cond.broadcast
        end
        emit_event(:server_stop, bind_address: bind_address)
        @logger.info("Stopped #{bind_address}")
        self
      end

      # Graceful drain: refuses new connections at once, lets requests in progress finish
      # (up to drain_timeout), then stops.
      def drain(timeout: nil)
        @lock.synchronize { @state = :draining if @state == :ready }
        emit_event(:server_drain, bind_address: bind_address)
        close_listener
        stop(timeout: timeout)
      end

      # Starts this server plus an HTTPAdapter (http_port:) and a TCPAdapter (tcp_port:)
      # over its store's protocol interpreter, wired to its health, metrics, events and
      # changefeed. Returns self; #stop stops them too.
      def start_with_adapters(http_port: nil, tcp_port: nil, http_host: nil, tcp_host: nil)
        @adapters ||= []
        if http_port
          @adapters << HTTPAdapter.new(
            interpreter: protocol, port: http_port, host: http_host || @config.host, token: @config.token,
            health_provider: -> { health_snapshot }, metrics_provider: -> { metrics_snapshot },
            status_provider: -> { observability_snapshot }, events_provider: -> { recent_events.to_a },
            changefeed_provider: -> { @changefeed }, ready_provider: -> { ready? }
          ).start_async
        end
        @adapters << TCPAdapter.new(interpreter: protocol, port: tcp_port, host: tcp_host || @config.host).start_async if tcp_port
        start_async
      end

      # The HTTP/TCP adapters started by start_with_adapters.
      def adapters
        (@adapters || []).dup
      end

      def active_connections
        @metrics.active_connections
      end

      # Live change streams (the changefeed's subscribers: push subscriptions, SSE).
      def stream_count
        @changefeed.subscriber_count
      end

      # Subscribers following `store` (all subscriptions when nil).
      def subscription_count(store = nil)
        @metrics.subscription_count(store)
      end

      def status
        case @state
        when :ready then @listener.closed? ? :stopped : :ready
        when :draining, :stopping then :draining
        else :stopped
        end
      end

      def health_snapshot
        {
          schema_version: 1,
          status: status,
          backend: @config.backend.to_s,
          transport: @config.transport.to_s,
          bind_address: bind_address,
          uptime_ms: @metrics.uptime_ms,
          active_connections: @metrics.active_connections,
          subscriptions: @metrics.subscription_count,
          fact_count: (@store.closed? ? nil : @store.fact_count),
          durability: (@config.backend == :file ? @config.durability.to_s : "memory"),
          pid: Process.pid
        }
      end

      def metrics_snapshot
        @metrics.check_alerts(backend: @store)
        @metrics.snapshot(backend: @store)
      end

      # Health, metrics, alerts (the server's and the changefeed's), the changefeed's
      # snapshot and the recent events.
      def observability_snapshot
        metrics = metrics_snapshot
        feed = @changefeed.snapshot
        {
          schema_version: 1,
          generated_at: Time.now.utc.iso8601(3),
          status: status,
          uptime_ms: @metrics.uptime_ms,
          server: health_snapshot,
          metrics: metrics,
          alerts: metrics[:alerts] + Array(feed[:alerts]),
          changefeed: feed,
          recent_events: @recent_events.to_a
        }
      end

      def inspect
        "#<#{self.class.name} #{bind_address} #{status} connections=#{active_connections}>"
      end
      alias to_s inspect

      private

      # One client connection.
      class Connection
        attr_reader :id, :socket, :write_lock
        attr_accessor :thread, :authenticated, :subscriptions

        def initialize(id, socket)
          @id = id
          @socket = socket
          @write_lock = Mutex.new
          @subscriptions = []
          @authenticated = false
        end

        def send_frame(frame)
          @write_lock.synchronize { @socket.write(frame) }
          frame.bytesize
        end

        def close_socket
          @socket.close unless @socket.closed?
        rescue ::IOError, SystemCallError
          nil
        end
      end
      private_constant :Connection

      def parse_address(address, transport)
        return { host: address.to_s } if transport.to_s == "unix"

        host, _, port = address.to_s.rpartition(":")
        raise ArgumentError, "address: must be \"host:port\", got #{address.inspect}" if host.empty? || port !~ /\A\d+\z/

        { host: host, port: Integer(port, 10) }
      end

      def open_store
        if @config.backend == :file
          LedgerStore.open(@config.path, durability: @config.durability, changefeed: @changefeed)
        else
          LedgerStore.new(changefeed: @changefeed)
        end
      end

      def bind
        if @config.transport == :unix
          path = @config.bind_address
          File.delete(path) if File.socket?(path)
          UNIXServer.new(path)
        else
          TCPServer.new(@config.host, @config.port)
        end
      end

      def write_pid_file
        return unless @config.pid_file

        File.write(@config.pid_file, "#{Process.pid}\n")
      end

      def remove_pid_file
        pid = @config.pid_file
        File.delete(pid) if pid && File.exist?(pid) && File.read(pid).strip == Process.pid.to_s
      rescue SystemCallError
        nil
      end

      def close_listener
        @listener.close unless @listener.closed?
        File.delete(@config.bind_address) if @config.transport == :unix && File.socket?(@config.bind_address)
      rescue ::IOError, SystemCallError
        nil
      end

      def emit_event(name, level: :info, **fields)
        @recent_events << { type: name.to_s, ts: Time.now.utc.iso8601(3) }.merge(fields)
        @logger.event(name, level: level, **fields)
      end

      def accept_loop
        loop do
          socket = begin
            @listener.accept
          rescue ::IOError, SystemCallError
            break
          end
          admit(socket)
        end
      end

      def admit(socket)
        remote = remote_address(socket)
        limit = @config.max_connections
        if @state != :ready || (limit && @metrics.active_connections >= limit)
          @metrics.record_connection_rejected
          emit_event(:connection_rejected, level: :warn, remote_addr: remote, reason: @state == :ready ? "max_connections" : @state.to_s)
          reject(socket, @state == :ready ? "too_many_connections" : "server_draining")
          return
        end

        id = @metrics.record_connection_accepted(remote_addr: remote)
        conn = Connection.new(id, socket)
        conn.authenticated = @config.token.nil?
        @lock.synchronize { @connections[id] = conn }
        emit_event(:connection_open, connection_id: id, remote_addr: remote)
        conn.thread = Thread.new do
          Thread.current.report_on_exception = false
          serve(conn)
        end
      end

      def reject(socket, code)
        socket.write(encode_frame(JSON.generate({ ok: false, error_code: code, error: code.tr("_", " ") })))
      rescue ::IOError, SystemCallError
        nil
      ensure
        socket.close rescue nil # rubocop:disable Style/RescueModifier
      end

      def remote_address(socket)
        addr = socket.remote_address
        addr.ip? ? "#{addr.ip_address}:#{addr.ip_port}" : "unix"
      rescue StandardError
        "unknown"
      end

      def serve(conn)
        reason = :normal
        loop do
          body = read_request(conn)
          break if body.nil?

          keep_open = handle_frame(conn, body)
          break unless keep_open
        end
      rescue FrameError => e
        reason = :bad_frame
        @metrics.record_error(op: "frame", error_class: "FrameError")
        send_error(conn, "bad_frame", e.message)
      rescue ::IOError, SystemCallError
        reason = :io_error
      ensure
        close_connection(conn, reason)
      end

      def read_request(conn)
        timeout = @config.idle_timeout
        # a subscriber only listens: it is never idle
        if timeout && conn.subscriptions.empty? && !conn.socket.wait_readable(timeout)
          send_error(conn, "idle_timeout", "connection idle for #{timeout}s")
          return nil
        end
        conn.socket.wait_readable
        read_frame(conn.socket, max_bytes: @config.max_frame_bytes, timeout: @config.slow_timeout)
      end

      def close_connection(conn, reason)
        conn.subscriptions.each do |store, sub|
          sub.close
          @metrics.record_subscription_closed(store: store)
        end
        conn.subscriptions.clear
        conn.close_socket
        removed = @lock.synchronize { @connections.delete(conn.id) }
        return unless removed

        @metrics.record_connection_closed(id: conn.id, reason: reason)
        emit_event(:connection_close, connection_id: conn.id, reason: reason.to_s)
      end

      # Handles one request frame; false when the connection must close.
      def handle_frame(conn, body)
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        request = parse_json(body)
        if request.nil?
          @metrics.record_error(op: "parse", error_class: "JSON::ParserError")
          send_error(conn, "invalid_json", "request is not a JSON object")
          return false
        end

        if request.key?(:protocol)
          op = "envelope:#{request[:op]}"
          return refuse_unauthenticated(conn, op) unless authenticate(conn, request)

          out = conn.send_frame(encode_frame(dispatch_envelope(body)))
          @metrics.record_request(connection_id: conn.id, op: op, bytes_in: body.bytesize, bytes_out: out,
                                  duration_ms: elapsed_ms(started))
          return true
        end

        op = request[:op].to_s
        return refuse_unauthenticated(conn, op) unless authenticate(conn, request)

        @lock.synchronize { @in_flight += 1 }
        begin
          response, keep_open = run_op(conn, op, request)
        ensure
          @lock.synchronize do
            @in_flight -= 1
            @cond.broadcast
          end
        end
        out = conn.send_frame(encode_frame(JSON.generate(response)))
        @metrics.record_request(connection_id: conn.id, op: op, bytes_in: body.bytesize, bytes_out: out,
                                duration_ms: elapsed_ms(started))
        emit_event(:request, level: :debug, connection_id: conn.id, op: op, ok: response[:ok])
        keep_open
      end

      def parse_json(body)
        parsed = JSON.parse(body, symbolize_names: true, max_nesting: 100)
        parsed.is_a?(Hash) ? parsed : nil
      rescue JSON::ParserError, EncodingError
        nil
      end

      def dispatch_envelope(body)
        protocol.wire.dispatch_json(body)
      rescue StandardError => e
        JSON.generate({ protocol: "igniter_store", schema_version: 1, status: "error",
                        error: "internal error: #{e.class}: #{e.message}" })
      end

      def authenticate(conn, request)
        return true if conn.authenticated

        conn.authenticated = secure_compare(request[:token].to_s, @config.token.to_s)
      end

      def refuse_unauthenticated(conn, op)
        @metrics.record_error(op: op, error_class: "Unauthorized")
        send_error(conn, "unauthorized", "a valid token is required")
        false
      end

      def secure_compare(given, expected)
        return false unless given.bytesize == expected.bytesize

        given.bytes.zip(expected.bytes).reduce(0) { |acc, (a, b)| acc | (a ^ b) }.zero?
      end

      def send_error(conn, code, message)
        conn.send_frame(encode_frame(JSON.generate({ ok: false, error_code: code, error: message })))
      rescue ::IOError, SystemCallError
        nil
      end

      def elapsed_ms(started)
        ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round(3)
      end

      def wait_in_flight(timeout)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        @lock.synchronize do
          while @in_flight.positive?
            left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
            break if left <= 0

            @cond.wait(@lock, left)
          end
        end
      end

      # [response Hash, keep the connection open?]
      def run_op(conn, op, request)
        case op
        when "ping" then [{ ok: true, pong: true }, true]
        when "auth" then [{ ok: true }, true]
        when "write_fact" then [op_write_fact(request), true]
        when "replay" then [op_replay, true]
        when "write_snapshot"
          @store.checkpoint if @config.backend == :file
          [{ ok: true }, true]
        when "stats"
          [{ ok: true, facts_written: @metrics.facts_written, connections_active: @metrics.active_connections,
             uptime_ms: @metrics.uptime_ms, fact_count: @store.fact_count }, true]
        when "server_status" then [{ ok: true }.merge(observability_snapshot), true]
        when "subscribe" then [op_subscribe(conn, request), true]
        when "close" then [{ ok: true }, false]
        when "call" then [RemoteCalls.run(@store, request) { |n| @metrics.record_facts_written(count: n) }, true]
        when *LedgerOps::OPS then [LedgerOps.run(@store, op, request) { |n| @metrics.record_facts_written(count: n) }, true]
        else
          @metrics.record_error(op: op, error_class: "UnknownOp")
          [{ ok: false, error_code: "unknown_op", error: "unknown op: #{op.inspect}" }, true]
        end
      rescue StandardError => e
        @metrics.record_error(op: op, error_class: e.class.name.to_s.split("::").last)
        emit_event(:request_error, level: :warn, op: op, error: "#{e.class}: #{e.message}")
        [{ ok: false, error_code: "internal_error", error: "#{e.class}: #{e.message}" }, true]
      end

      def op_write_fact(request)
        raw = request[:fact]
        raise ArgumentError, "write_fact needs fact: {store:, key:, value:, ...}" unless raw.is_a?(Hash)

        fact = @store.__send__(:replay, Fact.from_h(raw))
        @metrics.record_facts_written
        { ok: true, id: fact.id }
      end

      def op_replay
        facts = @store.fact_log_all
        @metrics.record_facts_replayed(count: facts.size)
        { ok: true, facts: facts.map(&:to_h) }
      end

      def op_subscribe(conn, request)
        stores = Array(request[:stores]).map { |s| s.to_s.to_sym }
        sub = @changefeed.subscribe(stores: stores) do |event|
          push = encode_frame(JSON.generate({ event: "fact_written", fact: event.fact.to_h }))
          begin
            conn.send_frame(push)
          rescue ::IOError, SystemCallError
            nil
          end
        end
        keys = stores.empty? ? [:*] : stores
        keys.each_with_index do |store, i|
          conn.subscriptions << [store, i.zero? ? sub : NullSubscription]
          @metrics.record_subscription_opened(store: store)
        end
        emit_event(:subscribe, connection_id: conn.id, stores: stores.map(&:to_s))
        { ok: true, subscribed: stores.map(&:to_s) }
      end

      # Stands in for the one real subscription in a multi-store subscribe.
      module NullSubscription
        def self.close; end
      end
      private_constant :NullSubscription
    end

    # The reference's new name for StoreServer.
    LedgerServer = StoreServer
  end
end
