# frozen_string_literal: true

require "socket"
require "json"

module Igniter
  module Ledger
    # The reference's network client (NetworkBackend / LedgerNetworkBackend) of a
    # StoreServer: write_fact, replay, write_snapshot, close, subscribe, over the legacy
    # framed-JSON ops. A LedgerStore given it as `backend:` sends every fact it commits to
    # the server; `backend.replay.each { |f| store.__send__(:replay, f) }` loads one.
    # (Igniter::Ledger.connect gives a store that needs none of this.)
    #
    #   nb = Igniter::Ledger::NetworkBackend.new(address: "127.0.0.1:7400")
    #   nb.write_fact(fact)
    #   sub = nb.subscribe(stores: [:tasks]) { |fact| ... }
    #   sub.close
    class NetworkBackend
      include WireProtocol

      # A request the server refused, or a connection that failed.
      class NetworkError < StandardError
        # The server's error_code (nil for a connection failure).
        attr_reader :code

        def initialize(message = nil, code: nil)
          super(message)
          @code = code
        end
      end

      # A subscription's handle: #close stops it (idempotent).
      class Subscription
        def initialize(socket, thread)
          @socket = socket
          @thread = thread
        end

        def close
          @socket.close unless @socket.closed?
          @thread.join(2) unless @thread == Thread.current
          nil
        rescue ::IOError, SystemCallError
          nil
        end

        def closed?
          @socket.closed?
        end
      end

      attr_reader :address, :transport

      # address: "host:port" (TCP) or a socket path (unix); token: the server's shared
      # secret, if it has one; timeout: seconds to wait for an answer (nil: no limit).
      def initialize(address:, transport: :tcp, token: nil, timeout: nil, connect_timeout: 5)
        @address = address
        @transport = transport.to_sym
        @token = token
        @timeout = timeout
        @connect_timeout = connect_timeout
        @lock = Mutex.new
        @socket = open_socket
      end

      # Sends a fact to the server (it keeps the fact's id and times).
      def write_fact(fact)
        rpc("write_fact", fact: fact.to_h)
        nil
      end

      # Every fact the server holds, in commit order.
      def replay
        rpc("replay").fetch(:facts).map { |h| Fact.from_h(h) }
      end

      # Asks a file-backed server to write a snapshot (a memory server accepts and does
      # nothing).
      def write_snapshot(facts = [])
        rpc("write_snapshot", facts: facts.map(&:to_h))
        nil
      end

      def close
        @lock.synchronize do
          next if @socket.nil? || @socket.closed?

          begin
            @socket.write(encode_frame(JSON.generate({ op: "close" })))
            read_frame(@socket)
          rescue ::IOError, SystemCallError, FrameError
            nil
          ensure
            @socket.close
          end
        end
        nil
      end

      def closed?
        @socket.nil? || @socket.closed?
      end

      # Calls the block with each Fact written to `stores` (all stores when empty), on a
      # thread reading a second connection. Returns a Subscription.
      def subscribe(stores: [], &block)
        raise ArgumentError, "subscribe needs a block" unless block

        socket = open_socket
        socket.write(encode_frame(JSON.generate(request_body("subscribe", stores: Array(stores).map(&:to_s)))))
        ack = JSON.parse(read_frame(socket) || "{}", symbolize_names: true)
        unless ack[:ok]
          socket.close
          raise NetworkError.new("subscribe refused: #{ack[:error]}", code: ack[:error_code])
        end

        thread = Thread.new do
          Thread.current.report_on_exception = false
          loop do
            body = read_frame(socket)
            break if body.nil?

            msg = JSON.parse(body, symbolize_names: true)
            block.call(Fact.from_h(msg[:fact])) if msg[:event] == "fact_written" && msg[:fact]
          end
        rescue ::IOError, SystemCallError, FrameError
          nil
        end
        Subscription.new(socket, thread)
      end

      def inspect
        "#<#{self.class.name} #{@transport}:#{@address}#{closed? ? " closed" : ""}>"
      end

      private

      def open_socket
        socket =
          if @transport == :unix
            UNIXSocket.new(@address)
          else
            host, _, port = @address.to_s.rpartition(":")
            Socket.tcp(host, Integer(port, 10), connect_timeout: @connect_timeout)
          end
        socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1) if @transport == :tcp
        socket
      rescue SystemCallError, SocketError => e
        raise NetworkError, "cannot connect to #{@address}: #{e.message}"
      end

      def request_body(op, **payload)
        body = { op: op }.merge(payload)
        body[:token] = @token if @token
        body
      end

      # Sends one request and answers the response (Symbol keys); raises NetworkError
      # for {ok: false} or a broken connection.
      def rpc(op, **payload)
        response = @lock.synchronize do
          raise NetworkError, "connection to #{@address} is closed" if closed?

          begin
            @socket.write(encode_frame(JSON.generate(request_body(op, **payload))))
            if @timeout && !@socket.wait_readable(@timeout)
              raise NetworkError, "no answer from #{@address} within #{@timeout}s"
            end

            body = read_frame(@socket)
          rescue ::IOError, SystemCallError, FrameError => e
            @socket.close rescue nil # rubocop:disable Style/RescueModifier
            raise NetworkError, "connection to #{@address} failed during #{op}: #{e.message}"
          end
          if body.nil?
            @socket.close
            raise NetworkError, "server #{@address} closed the connection during #{op}"
          end
          JSON.parse(body, symbolize_names: true)
        end
        return response if response[:ok]

        raise NetworkError.new("#{op} failed: #{response[:error]} (#{response[:error_code]})", code: response[:error_code])
      end
    end

    # The reference's new name for NetworkBackend.
    LedgerNetworkBackend = NetworkBackend
  end
end
