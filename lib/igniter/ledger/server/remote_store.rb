# frozen_string_literal: true

require "socket"
require "json"
require "uri"

module Igniter
  module Ledger
    # The connection to the server failed or broke. A write that raised it may or may not
    # have committed (its answer was lost); the next call reconnects.
    class ConnectionError < Error; end

    # The server raised an error this client has no class for.
    class RemoteError < Error
      # The server-side class name.
      attr_reader :remote_class

      def initialize(message = nil, remote_class: nil)
        super(message)
        @remote_class = remote_class
      end
    end

    class << self
      # A store served by a StoreServer (igniter-ledger-server), with the embedded
      # store's API: write / append / read / read_fact / history / query / transaction /
      # `expected:`. The server assigns ids and times; values keep their Ruby types; a
      # conflict raises the same ConflictError. Safe to share between threads, and to use
      # across fork (each process opens its own connection).
      #
      #   store = Igniter::Ledger.connect("tcp://127.0.0.1:7400")
      #   store.write(store: :tasks, key: "t1", value: { title: "Ship" })
      #
      # url: "tcp://host:port", "unix:///path/to.sock" or "host:port"; token: the
      # server's shared secret; timeout: seconds to wait for an answer.
      def connect(url, token: nil, timeout: nil, connect_timeout: 5)
        RemoteStore.new(url, token: token, timeout: timeout, connect_timeout: connect_timeout)
      end
    end

    # A remote LedgerStore (see Igniter::Ledger.connect).
    class RemoteStore
      include WireProtocol

      attr_reader :url

      def initialize(url, token: nil, timeout: nil, connect_timeout: 5)
        @url = url.to_s
        @transport, @address = parse(@url)
        @token = token
        @timeout = timeout
        @connect_timeout = connect_timeout
        @lock = Mutex.new
        @socket = nil
        @pid = Process.pid
        @closed = false
      end

      def write(store:, key:, value:, **options)
        call("write", { store: store, key: key, value: value }.merge(options))
      end

      def append(history:, event:, **options)
        call("append", { history: history, event: event }.merge(options))
      end

      # Commits the writes and appends queued in the block in one atomic batch on the
      # server; returns their facts. `expected:` checks see earlier operations of the
      # same batch. Nothing is sent if the block raises.
      def transaction
        raise ArgumentError, "transaction needs a block" unless block_given?

        tx = Batch.new
        yield tx
        return [] if tx.operations.empty?

        call("transaction", { operations: tx.operations })
      end

      # Commits several operations (Hashes with #write's or #append's keywords) atomically.
      def write_batch(operations)
        call("transaction", { operations: operations.to_a })
      end

      def read(store:, key:, **options)
        call("read", { store: store, key: key }.merge(options))
      end

      def read_fact(store:, key:, **options)
        call("read_fact", { store: store, key: key }.merge(options))
      end

      def time_travel(store:, key:, at:)
        call("time_travel", { store: store, key: key, at: at })
      end

      def history(store:, **options)
        call("history", { store: store }.merge(options))
      end

      def history_partition(store:, partition_key:, partition_value:, **options)
        call("history_partition", { store: store, partition_key: partition_key, partition_value: partition_value }.merge(options))
      end

      def query(store:, scope:, **options)
        call("query", { store: store, scope: scope }.merge(options))
      end

      # Registers an AccessPath on the server (for every client); returns it.
      def register_path(path)
        raise TypeError, "register_path needs an Igniter::Ledger::AccessPath, got #{path.class}" unless path.is_a?(AccessPath)

        call("register_path", path.to_h.slice(:store, :scope, :filters, :cache_ttl).compact)
        path
      end

      def causation_chain(store:, key:)
        call("causation_chain", { store: store, key: key })
      end

      def lineage(store:, key:)
        call("lineage", { store: store, key: key })
      end

      def fact_count
        call("fact_count", {})
      end

      def fact_log_all(**options)
        call("fact_log_all", options)
      end

      def fact_by_id(id)
        call("fact_by_id", { id: id })
      end

      def checkpoint
        call("checkpoint", {})
        nil
      end

      # Round trip to the server; answers true.
      def ping
        request({ op: "ping" })[:pong] == true
      end

      def close
        @lock.synchronize do
          @closed = true
          drop_socket
        end
        nil
      end

      def closed?
        @closed
      end

      def inspect
        "#<#{self.class.name} #{@url}#{@closed ? " closed" : ""}>"
      end
      alias to_s inspect

      # Collects a transaction's operations.
      class Batch
        attr_reader :operations

        def initialize
          @operations = []
        end

        def write(store:, key:, value:, **options)
          @operations << { store: store, key: key, value: value }.merge(options)
          @operations.size - 1
        end

        def append(history:, event:, **options)
          @operations << { history: history, event: event }.merge(options)
          @operations.size - 1
        end

        def size
          @operations.size
        end

        def empty?
          @operations.empty?
        end
      end

      private

      def parse(url)
        if url.start_with?("unix://")
          [:unix, url.delete_prefix("unix://")]
        else
          rest = url.delete_prefix("tcp://")
          host, _, port = rest.rpartition(":")
          raise ArgumentError, "connect: expected tcp://host:port or unix:///path, got #{url.inspect}" if host.empty? || port !~ /\A\d+\z/

          [:tcp, [host.delete_prefix("[").delete_suffix("]"), Integer(port, 10)]]
        end
      end

      def call(method, args)
        return PlainCalls.call(self, method, args) if @plain

        response = request({ op: "call", method: method, args: ValueCodec.dump(args) })
        ValueCodec.load(response[:result])
      rescue ConnectionError => e
        raise unless e.message.include?("(unknown_op)")

        # A server without the `call` op (the Rust server): its plain-JSON ledger.* ops.
        @plain = true
        PlainCalls.call(self, method, args)
      end

      # The remote store over the `ledger.*` ops (plain JSON: Symbols in values come
      # back as Strings, hash keys as Symbols), for servers without the `call` op.
      module PlainCalls
        module_function

        def call(remote, method, args)
          case method
          when "write"
            fact(remote.__send__(:request, { op: "ledger.write" }.merge(write_args(args)))[:fact])
          when "append" then fact(remote.__send__(:request, { op: "ledger.append" }.merge(plain(args)))[:fact])
          when "transaction"
            ops = args.fetch(:operations).map do |o|
              o.key?(:history) ? { op: "append" }.merge(plain(o)) : { op: "write" }.merge(write_args(o))
            end
            remote.__send__(:request, { op: "ledger.commit", ops: ops })[:facts].map { |f| fact(f) }
          when "read" then remote.__send__(:request, { op: "ledger.read" }.merge(plain(args)))[:value]
          when "read_fact"
            f = remote.__send__(:request, { op: "ledger.read" }.merge(plain(args)))[:fact]
            f && fact(f)
          when "history" then remote.__send__(:request, { op: "ledger.history" }.merge(plain(args)))[:facts].map { |f| fact(f) }
          when "fact_count" then remote.__send__(:request, { op: "ledger.count" })[:count]
          else raise ArgumentError, "#{method} is not served by this server (it has no `call` op)"
          end
        end

        def plain(args)
          JSON.parse(JSON.generate(args.compact), symbolize_names: true)
        end

        def write_args(args)
          args = args.dup
          if args.key?(:expected)
            e = args.delete(:expected)
            args[:expected] = e.nil? || e == :none ? "absent" : (e.is_a?(Fact) ? e.id : e.to_s)
          end
          plain(args)
        end

        def fact(hash)
          Fact.from_h(hash)
        end
      end
      private_constant :PlainCalls

      def request(body)
        body[:token] = @token if @token
        frame = encode_frame(JSON.generate(body))
        response = @lock.synchronize do
          raise ClosedError, "this remote store was closed" if @closed

          exchange(frame, body[:method] || body[:op])
        end
        return response if response[:ok]

        raise remote_error(response)
      end

      def exchange(frame, what)
        socket = connection
        begin
          socket.write(frame)
          raise ConnectionError, "no answer from #{@url} within #{@timeout}s (#{what})" if @timeout && !socket.wait_readable(@timeout)

          body = read_frame(socket)
          raise ConnectionError, "#{@url} closed the connection during #{what}" if body.nil?

          JSON.parse(body, symbolize_names: true)
        rescue ConnectionError
          drop_socket
          raise
        rescue ::IOError, SystemCallError, FrameError, JSON::ParserError => e
          drop_socket
          raise ConnectionError, "connection to #{@url} failed during #{what}: #{e.message}"
        end
      end

      def connection
        drop_socket if @pid != Process.pid # a forked child opens its own
        return @socket if @socket && !@socket.closed?

        @pid = Process.pid
        @socket =
          if @transport == :unix
            UNIXSocket.new(@address)
          else
            Socket.tcp(*@address, connect_timeout: @connect_timeout).tap do |s|
              s.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
            end
          end
      rescue SystemCallError, SocketError => e
        @socket = nil
        raise ConnectionError, "cannot connect to #{@url}: #{e.message}"
      end

      def drop_socket
        s = @socket
        @socket = nil
        # In a forked child the socket is the parent's: close our copy only.
        s&.close unless s.nil? || s.closed?
      rescue ::IOError, SystemCallError
        nil
      end

      def remote_error(response)
        message = response[:error].to_s
        if response[:error_code] == "conflict"
          error = ConflictError.new(message)
          { store: response[:store]&.to_sym, key: response[:key], expected: response[:expected],
            actual: response[:actual] }.each { |k, v| error.instance_variable_set(:"@#{k}", v) }
          return error
        end
        name = response[:error_class].to_s
        klass = error_class(name)
        return ConnectionError.new("server refused the request: #{message} (#{response[:error_code]})") if klass.nil? && name.empty?

        if klass.nil?
          return RemoteError.new("#{name}: #{message}", remote_class: name)
        end

        error = klass.new(message)
        if error.is_a?(ConflictError) && response[:conflict]
          details = ValueCodec.load(response[:conflict])
          %i[store key expected actual].each { |k| error.instance_variable_set(:"@#{k}", details[k]) }
        end
        error
      end

      def error_class(name)
        return Object.const_get(name) if RemoteCalls::RAISABLE.include?(name)

        short = name[/\AIgniter::(?:Store|Ledger)::(\w+)\z/, 1]
        return nil unless short && Ledger.const_defined?(short, false)

        klass = Ledger.const_get(short, false)
        klass.is_a?(Class) && klass <= Exception ? klass : nil
      end
    end
  end
end
