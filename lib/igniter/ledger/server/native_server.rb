# frozen_string_literal: true

require "json"

module Igniter
  module Ledger
    # The Rust ledger server (the `server/` crate, on tokio) running inside this Ruby
    # process, with StoreServer's constructor and lifecycle: StoreServer's default engine.
    #
    #   server = Igniter::Ledger::StoreServer.new(address: "127.0.0.1:7400", backend: :file,
    #                                             path: "app.wal", http_port: 7300)
    #   server.start_async
    #   ...
    #   server.stop
    #
    # It serves the same framed protocol (legacy ops, envelopes, `ledger.*` ops, the
    # remote store's `call`), HTTP (with `http_port:`, or later `start_with_adapters`)
    # and SSE as the Rust binary, over `#store`, a LedgerStore of this process (opened
    # here, or given with `store:`): what Ruby registers on it (derivation rules,
    # consumers, coercions) applies to writes arriving over the network.
    #
    # Threads: the server's own (tokio) never call Ruby. While the store holds no Ruby
    # callback, requests run entirely there. Once it holds one, each request's ledger
    # work is handed to a Ruby thread of this server, which waits with the GVL released
    # and runs the work with the GVL (so requests needing Ruby are served one at a time,
    # and a commit in fsync mode then waits with the GVL held). That thread also answers
    # `call` requests (Igniter::Ledger.connect) with RemoteCalls. A second Ruby thread
    # hands server events to the ServerLogger.
    class NativeStoreServer
      attr_reader :config, :logger, :store

      def initialize(host: nil, port: nil, transport: nil, backend: nil, path: nil, logger: nil, pid_file: nil,
                     drain_timeout: nil, max_connections: nil, config: nil, address: nil, changefeed: nil,
                     durability: nil, token: nil, max_frame_bytes: nil, idle_timeout: nil, slow_timeout: nil,
                     http_port: nil, http_host: nil, max_body_bytes: nil, store: nil, max_http_connections: nil,
                     header_read_timeout: nil, metrics_thresholds: nil, slow_op_threshold_ms: nil,
                     max_recent_events: nil)
        _ = [metrics_thresholds, slow_op_threshold_ms, max_recent_events] # the Rust server's own defaults
        base = (config || ServerConfig.new).to_h
        explicit = { host: host, port: port, transport: transport, backend: backend, path: path, pid_file: pid_file,
                     drain_timeout: drain_timeout, max_connections: max_connections, durability: durability,
                     token: token, max_frame_bytes: max_frame_bytes, idle_timeout: idle_timeout,
                     slow_timeout: slow_timeout }.compact
        if address
          t = (explicit[:transport] || base[:transport]).to_s
          explicit.merge!(t == "unix" ? { host: address.to_s } : split_address(address))
        end
        explicit[:changefeed] = (base[:changefeed] || {}).merge(changefeed) if changefeed
        @config = ServerConfig.new(**base.merge(explicit))
        ChangefeedBuffer.new(**@config.changefeed) # validates the options as the Ruby engine does
        @logger = logger || ServerLogger.new(@config.log_io, @config.log_level)
        @owns_store = store.nil?
        @store = store || open_store
        @adapters = []
        @native = NativeServer._start(
          JSON.generate(native_options(http_port, http_host, max_body_bytes, max_http_connections,
                                       header_read_timeout)),
          @store, @store.protocol
        )
        @stopped = false
        @lock = Mutex.new
        @events = Thread.new do
          Thread.current.name = "igniter-ledger server events"
          Thread.current.report_on_exception = false
          pump_events until @stopped
          pump_events(0)
        end
        @host = Thread.new do
          Thread.current.name = "igniter-ledger server ruby work"
          Thread.current.report_on_exception = false
          handler = method(:answer_call)
          nil while @native._host_run(handler, 0.2)
        end
        @logger.info("Listening on #{bind_address} (#{@config.transport}, backend #{@config.backend}, native)")
      rescue StandardError
        @store&.close if @owns_store && !@store.closed?
        raise
      end

      def bind_address
        @native.bind_address
      end

      def port
        @native.port
      end

      # The HTTP listener's port (nil without http_port:).
      def http_port
        @native.http_port
      end

      # The store's protocol interpreter (the server answers envelopes with it).
      def protocol
        @store.protocol
      end

      def start_async
        self
      end

      # Serves on the calling thread until stop/drain (from another thread or a signal).
      def start
        sleep 0.1 until @stopped
        self
      end

      def start_foreground
        %w[TERM INT].each { |sig| Signal.trap(sig) { Thread.new { drain } } }
        start
      end

      def wait_until_ready(timeout: 5)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        until ready?
          raise Timeout::Error, "server not ready after #{timeout}s" if @stopped || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

          sleep 0.01
        end
        self
      end

      def ready?
        !@stopped && @native.ready?
      end

      def stopped?
        @stopped
      end

      def status
        return :stopped if @stopped

        @native.draining? ? :draining : :ready
      end

      # Starts HTTP on this server (http_port:, served by the Rust HTTP listener: every
      # HTTPAdapter route, SSE and the status page) and a TCPAdapter (tcp_port:) over the
      # store's protocol interpreter. Returns self; #stop stops them too.
      def start_with_adapters(http_port: nil, tcp_port: nil, http_host: nil, tcp_host: nil)
        if http_port
          h = http_host || @config.host
          @adapters << HTTPListener.new(h, @native._serve_http("#{h}:#{http_port}"))
        end
        @adapters << TCPAdapter.new(interpreter: protocol, port: tcp_port, host: tcp_host || @config.host).start_async if tcp_port
        start_async
      end

      # The server's own HTTP listener, as start_with_adapters lists it (it stops with the
      # server).
      HTTPListener = Struct.new(:host, :port) do
        def bind_address
          "#{host}:#{port}"
        end

        def stop
          self
        end
      end

      # Live change streams: SSE `/v1/events` streams and legacy push subscriptions.
      def stream_count
        @native.stream_count
      end

      # The listeners started by start_with_adapters (HTTP first, then the TCPAdapter).
      def adapters
        @adapters.dup
      end

      def draining?
        @native.draining?
      end

      def stop(timeout: nil)
        shutdown { timeout ? @native._drain(Float(timeout)) : @native._stop }
      end

      def drain(timeout: nil)
        shutdown { @native._drain(Float(timeout || @config.drain_timeout)) }
      end

      # The server's changefeed (a ChangefeedBuffer over the Rust server's buffer: its
      # snapshot, and Ruby subscribers on threads of their own).
      def changefeed
        @changefeed ||= @native.changefeed
      end

      def active_connections
        @native.active_connections
      end

      def subscription_count(store = nil)
        store.nil? ? metrics_snapshot[:subscription_count] : @native.subscription_count(store.to_s)
      end

      def fact_count
        @store.fact_count
      end

      def health_snapshot
        h = JSON.parse(@native.health_json, symbolize_names: true)
        h.merge(status: h[:status].to_sym)
      end

      def metrics_snapshot
        JSON.parse(@native.metrics_json, symbolize_names: true).tap do |m|
          m[:requests_total] = m[:requests_total].transform_keys(&:to_s)
          m[:errors_total] = m[:errors_total].transform_keys(&:to_s)
          m[:subscriptions_by_store] = m[:subscriptions_by_store].transform_keys(&:to_s)
        end
      end

      # The metrics in the Prometheus text format.
      def metrics_prometheus
        @native.metrics_prometheus
      end

      def observability_snapshot
        status = JSON.parse(@native.status_json, symbolize_names: true)
        feed = changefeed&.snapshot
        return status unless feed

        status.merge(changefeed: feed, alerts: Array(status[:alerts]) + Array(feed[:alerts]))
      end

      def recent_events
        JSON.parse(@native.recent_events_json, symbolize_names: true)
      end

      def inspect
        "#<#{self.class.name} #{bind_address} #{@stopped ? "stopped" : "ready"} native>"
      end
      alias to_s inspect

      private

      def split_address(address)
        host, _, port = address.to_s.rpartition(":")
        raise ArgumentError, "address: must be \"host:port\", got #{address.inspect}" if host.empty? || port !~ /\A\d+\z/

        { host: host, port: Integer(port, 10) }
      end

      def native_options(http_port, http_host, max_body_bytes, max_http_connections, header_read_timeout)
        c = @config
        {
          transport: c.transport.to_s, address: c.bind_address,
          http: http_port && "#{http_host || c.host}:#{http_port}",
          token: c.token, max_connections: c.max_connections, max_frame_bytes: c.max_frame_bytes,
          max_body_bytes: max_body_bytes, max_http_connections: max_http_connections,
          header_read_timeout: header_read_timeout, idle_timeout: c.idle_timeout, slow_timeout: c.slow_timeout,
          drain_timeout: c.drain_timeout, pid_file: c.pid_file, backend: c.backend.to_s,
          # a store given by the caller keeps its own changefeed (if any)
          changefeed: @owns_store ? c.changefeed.transform_values { |v| v.is_a?(Symbol) ? v.to_s : v } : nil
        }.compact
      end

      def open_store
        if @config.backend == :file
          LedgerStore.open(@config.path, durability: @config.durability)
        else
          LedgerStore.new
        end
      end

      # A `call` request (JSON text) → its answer (JSON text), on the server's Ruby thread.
      def answer_call(json)
        request = JSON.parse(json, symbolize_names: true, max_nesting: 100)
        JSON.generate(RemoteCalls.run(@store, request))
      rescue StandardError => e
        JSON.generate({ ok: false, error_code: "internal_error", error: "#{e.class}: #{e.message}" })
      end

      def shutdown
        @lock.synchronize do
          return self if @stopped

          yield
          @stopped = true
        end
        @adapters.each { |a| a.stop rescue nil } # rubocop:disable Style/RescueModifier
        @host.join(5) unless @host == Thread.current
        @store.close if @owns_store && !@store.closed?
        @events.join(5)
        @logger.info("Stopped #{bind_address}")
        self
      end

      # Hands queued server events to the logger (waiting up to `wait` seconds).
      def pump_events(wait = 0.2)
        @native._next_events(wait).each do |line|
          e = JSON.parse(line, symbolize_names: true)
          name = e.delete(:event) || "event"
          level = (e.delete(:level) || "info").to_s.to_sym
          e.delete(:ts)
          e.delete(:type)
          @logger.event(name, level: ServerLogger::LEVELS.key?(level) ? level : :info, **e)
        end
      rescue JSON::ParserError
        nil
      end
    end

    class StoreServer
      class << self
        # StoreServer.new(...) runs the Rust server in this process (NativeStoreServer,
        # engine: :native, the default); engine: :ruby (or $IGNITER_LEDGER_SERVER_ENGINE=ruby)
        # runs this class, Ruby threads over the same store API.
        def new(*args, engine: ENV.fetch("IGNITER_LEDGER_SERVER_ENGINE", "native"), **options, &block)
          case engine.to_sym
          when :ruby then super(*args, **options, &block)
          when :native then NativeStoreServer.new(**options)
          else raise ArgumentError, "engine: must be :ruby or :native, got #{engine.inspect}"
          end
        end
      end
    end
  end
end
