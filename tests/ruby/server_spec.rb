# frozen_string_literal: true

require_relative "spec_helper"
require "net/http"
require "stringio"

# StoreServer, its clients (NetworkBackend, Igniter::Ledger.connect) and its HTTP front
# door, in one process: lifecycle, writes reaching Ruby rules and the changefeed, the
# remote store's API and errors, and the safety limits.
RSpec.describe "ledger server" do
  L = Igniter::Ledger unless defined?(L)
  include L::WireProtocol

  def quiet
    L::ServerLogger.new(nil, :error)
  end

  def server(**opts)
    @servers ||= []
    s = L::StoreServer.new(address: "127.0.0.1:0", logger: quiet, **opts)
    @servers << s
    s.start_async
  end

  # A hang fails the example instead of the run.
  around { |example| Timeout.timeout(60) { example.run } }

  after do
    (@servers || []).each(&:stop)
    (@stores || []).each(&:close)
  end

  def connect(srv, **opts)
    @stores ||= []
    (@stores << L.connect("tcp://#{srv.bind_address}", **opts)).last
  end

  def raw(srv)
    host, port = srv.bind_address.split(":")
    TCPSocket.new(host, Integer(port))
  end

  def exchange(socket, body)
    socket.write(encode_frame(body))
    reply = read_frame(socket)
    reply && JSON.parse(reply, symbolize_names: true)
  end

  # true when the server closed the connection (EOF or reset)
  def closed_by_server?(socket)
    return true unless socket.wait_readable(2)

    socket.read_nonblock(1, exception: false).nil?
  rescue Errno::ECONNRESET
    true
  end

  describe "lifecycle" do
    it "is bound in new, serves after start_async, refuses after stop and removes its pid file" do
      Dir.mktmpdir do |dir|
        pid = File.join(dir, "s.pid")
        srv = L::StoreServer.new(address: "127.0.0.1:0", logger: quiet, pid_file: pid)
        port = srv.port
        expect(File.read(pid).strip).to eq(Process.pid.to_s)
        expect { TCPSocket.new("127.0.0.1", port).close }.not_to raise_error # listening before start
        srv.start_async.wait_until_ready(timeout: 1)
        expect(connect(srv).ping).to be true
        srv.stop
        expect(srv.status).to eq(:stopped)
        expect(File.exist?(pid)).to be false
        expect { TCPSocket.new("127.0.0.1", port) }.to raise_error(Errno::ECONNREFUSED)
      end
    end

    it "serves a unix socket to the remote store and the NetworkBackend, and removes it on stop" do
      Dir.mktmpdir do |dir|
        sock = File.join(dir, "ledger.sock")
        srv = L::StoreServer.new(transport: :unix, address: sock, logger: quiet).start_async
        @servers = [srv]
        expect(srv.bind_address).to eq(sock)
        remote = L.connect("unix://#{sock}")
        (@stores ||= []) << remote
        fact = remote.write(store: :u, key: "k", value: { via: :unix })
        nb = L::NetworkBackend.new(address: sock, transport: :unix)
        expect(nb.replay.map(&:id)).to eq([fact.id])
        nb.close
        srv.stop
        expect(File.exist?(sock)).to be false
      end
    end

    it "drain lets a request in progress finish and refuses new connections" do
      srv = server
      store = srv.store
      gate = Queue.new
      store.register_derivation(source_store: :slow, target_store: :slow_out, target_key: "k",
                                rule: ->(_facts) { gate.pop; { done: true } })
      remote = connect(srv)
      writer = Thread.new { remote.write(store: :slow, key: "a", value: 1) }
      sleep 0.02 while store.read(store: :slow, key: "a").nil? # the rule is running: the request is in progress
      drainer = Thread.new { srv.drain(timeout: 5) }
      sleep 0.1
      expect(srv.status).to eq(:draining)
      expect { TCPSocket.new("127.0.0.1", srv.port).close }.to raise_error(SystemCallError)
      gate << :go
      fact = writer.value
      drainer.join
      expect(fact.value).to eq(1)
      expect(srv.status).to eq(:stopped)
    end

    it "logs server_start, connection events and requests through the ServerLogger" do
      io = StringIO.new
      srv = L::StoreServer.new(address: "127.0.0.1:0", logger: L::ServerLogger.new(io, :debug)).start_async
      @servers = [srv]
      connect(srv).write(store: :x, key: "k", value: 1)
      @stores.each(&:close)
      sleep 0.1
      events = io.string.lines.grep(/\A\[EVENT\] /).map { |l| JSON.parse(l.sub("[EVENT] ", "")) }
      expect(events.map { |e| e["event"] }).to include("server_start", "connection_open", "request", "connection_close")
      expect(events.find { |e| e["event"] == "request" }["op"]).to eq("call")
      expect(srv.recent_events.to_a.map { |e| e[:type] }).to include("server_start")
    end
  end

  describe "writes through the server" do
    it "run the server store's Ruby derivation rules and reach its changefeed subscribers" do
      srv = server
      srv.store.register_derivation(source_store: :orders, target_store: :totals, target_key: "all",
                                    rule: ->(facts) { { sum: facts.sum { |f| f.value[:amount] } } })
      seen = Queue.new
      sub = srv.changefeed.subscribe(stores: [:orders]) { |event| seen << event.key }
      remote = connect(srv)
      remote.write(store: :orders, key: "o1", value: { amount: 5 })
      remote.write(store: :orders, key: "o2", value: { amount: 7 })
      expect(remote.read(store: :totals, key: "all")).to eq(sum: 12)
      expect([seen.pop, seen.pop]).to eq(%w[o1 o2])
      sub.close
    end

    it "reach legacy subscribers (NetworkBackend#subscribe) from the remote store" do
      srv = server
      got = Queue.new
      nb = L::NetworkBackend.new(address: srv.bind_address)
      handle = nb.subscribe(stores: [:tasks]) { |fact| got << fact }
      fact = connect(srv).write(store: :tasks, key: "t1", value: { n: 1 })
      pushed = got.pop
      expect(pushed.id).to eq(fact.id)
      expect(pushed.value).to eq(n: 1)
      handle.close
      nb.close
    end
  end

  describe "Igniter::Ledger.connect" do
    it "has the embedded API: ids and times from the server, types kept, history, query, transaction" do
      srv = server
      a = connect(srv)
      b = connect(srv)
      value = { status: :open, tags: %w[x y], n: 1.5, nested: { 1 => :one, "s" => nil } }
      fact = a.write(store: :tasks, key: "t1", value: value)
      expect(fact.id).to eq(srv.store.read_fact(store: :tasks, key: "t1").id)
      expect(sig(b.read(store: :tasks, key: "t1"))).to eq(sig(value))
      b.write(store: :tasks, key: "t1", value: { status: :done })
      expect(a.history(store: :tasks, key: "t1").map { |f| f.value[:status] }).to eq(%i[open done])
      expect(a.read(store: :tasks, key: "t1", as_of: fact.transaction_time)[:status]).to eq(:open)

      a.register_path(L::AccessPath.new(store: :tasks, scope: :done, filters: { status: :done }))
      expect(b.query(store: :tasks, scope: :done).map(&:key)).to eq(["t1"])

      facts = a.transaction do |tx|
        tx.write(store: :acct, key: "a", value: { bal: 1 })
        tx.append(history: :log, event: { moved: 1 })
      end
      expect(facts.map(&:store)).to eq(%i[acct log])
      expect(srv.store.fact_count).to eq(a.fact_count)
    end

    it "raises the embedded errors: ConflictError with its fields, TypeError, ArgumentError" do
      srv = server
      remote = connect(srv)
      first = remote.write(store: :s, key: "k", value: 1)
      expect { remote.write(store: :s, key: "k", value: 2, expected: :none) }.to raise_error(L::ConflictError) { |e|
        expect([e.store, e.key, e.actual]).to eq([:s, "k", first.id])
      }
      remote.write(store: :s, key: "k", value: 3, expected: first.id)
      expect { remote.write(store: :s, key: "k", value: { at: Time.now }) }.to raise_error(TypeError, /Time/)
      expect { remote.query(store: :s, scope: :nope) }.to raise_error(ArgumentError)
      # a conflicting transaction writes nothing
      expect do
        remote.transaction do |tx|
          tx.write(store: :s, key: "new", value: 1)
          tx.write(store: :s, key: "k", value: 4, expected: first.id)
        end
      end.to raise_error(L::ConflictError)
      expect(remote.read(store: :s, key: "new")).to be_nil
      expect(remote.read(store: :s, key: "k")).to eq(3)
    end

    it "gives a clear ConnectionError while the server is down and reconnects when it is back" do
      Dir.mktmpdir do |dir|
        path = File.join(dir, "r.wal")
        srv = L::StoreServer.new(address: "127.0.0.1:0", backend: :file, path: path, logger: quiet).start_async
        port = srv.port
        remote = connect(srv)
        remote.write(store: :s, key: "k", value: 1)
        srv.stop
        expect { remote.read(store: :s, key: "k") }.to raise_error(L::ConnectionError, /127\.0\.0\.1/)
        expect { remote.read(store: :s, key: "k") }.to raise_error(L::ConnectionError, /cannot connect/)
        srv = L::StoreServer.new(address: "127.0.0.1:#{port}", backend: :file, path: path, logger: quiet).start_async
        @servers = [srv]
        expect(remote.read(store: :s, key: "k")).to eq(1)
      end
    end
  end

  describe "ledger.* ops (the Rust client's form, plain JSON)" do
    it "writes, appends, commits atomically, reads, lists history and counts; a conflict carries its fields" do
      srv = server
      s = raw(srv)
      w = exchange(s, JSON.generate({ op: "ledger.write", store: "tasks", key: "t1", value: { n: 1 } }))
      expect(w[:ok]).to be true
      expect(w[:fact]).to include(store: "tasks", key: "t1", value: { n: 1 })
      expect(srv.store.read(store: :tasks, key: "t1")).to eq(n: 1)
      c = exchange(s, JSON.generate({ op: "ledger.write", store: "tasks", key: "t1", value: 2, expected: "absent" }))
      expect(c).to include(ok: false, error_code: "conflict", store: "tasks", key: "t1", actual: w[:fact][:id])
      ok = exchange(s, JSON.generate({ op: "ledger.write", store: "tasks", key: "t1", value: 2, expected: w[:fact][:id] }))
      expect(ok[:ok]).to be true
      a = exchange(s, JSON.generate({ op: "ledger.append", history: "log", event: { e: 1 } }))
      expect(a[:fact][:store]).to eq("log")
      bad = exchange(s, JSON.generate({ op: "ledger.commit", ops: [{ op: "write", store: "x", key: "1", value: 1 },
                                                                   { op: "write", store: "tasks", key: "t1", value: 3, expected: "absent" }] }))
      expect(bad[:error_code]).to eq("conflict")
      expect(srv.store.read(store: :x, key: "1")).to be_nil
      good = exchange(s, JSON.generate({ op: "ledger.commit", ops: [{ op: "write", store: "x", key: "1", value: 1 },
                                                                    { op: "append", history: "log", event: { e: 2 } }] }))
      expect(good[:facts].map { |f| f[:store] }).to eq(%w[x log])
      r = exchange(s, JSON.generate({ op: "ledger.read", store: "tasks", key: "t1" }))
      expect(r).to include(ok: true, found: true, value: 2)
      expect(exchange(s, JSON.generate({ op: "ledger.read", store: "tasks", key: "nope" }))).to include(found: false)
      expect(exchange(s, JSON.generate({ op: "ledger.history", store: "tasks", key: "t1" }))[:facts].map { |f| f[:value] }).to eq([{ n: 1 }, 2])
      expect(exchange(s, JSON.generate({ op: "ledger.count" }))[:count]).to eq(srv.store.fact_count)
      s.close
    end
  end

  describe "limits and hostile input" do
    it "requires the token on every connection when one is set" do
      srv = server(token: "s3cret")
      expect { connect(srv).fact_count }.to raise_error(L::ConnectionError, /unauthorized/)
      expect(connect(srv, token: "s3cret").fact_count).to eq(0)
      expect { connect(srv, token: "s3cres").fact_count }.to raise_error(L::ConnectionError, /unauthorized/)
      s = raw(srv)
      expect(exchange(s, JSON.generate({ op: "auth", token: "s3cret" }))[:ok]).to be true
      expect(exchange(s, JSON.generate({ op: "ping" }))[:pong]).to be true
      s.close
    end

    it "answers an oversize frame with an error and closes the connection" do
      srv = server(max_frame_bytes: 1024)
      s = raw(srv)
      s.write([10_000].pack("N"))
      reply = JSON.parse(read_frame(s), symbolize_names: true)
      expect(reply).to include(ok: false, error_code: "bad_frame")
      expect(reply[:error]).to match(/exceeds the limit of 1024/)
      expect(closed_by_server?(s)).to be true
      expect(connect(srv).ping).to be true
    end

    it "answers a corrupt frame (bad CRC) and a non-JSON body with an error, then closes" do
      srv = server
      s = raw(srv)
      frame = encode_frame('{"op":"ping"}')
      frame.setbyte(frame.bytesize - 1, frame.getbyte(frame.bytesize - 1) ^ 0xFF)
      s.write(frame)
      expect(JSON.parse(read_frame(s))["error"]).to match(/CRC/)
      expect(closed_by_server?(s)).to be true
      s2 = raw(srv)
      expect(exchange(s2, "not json")).to include(ok: false, error_code: "invalid_json")
      expect(closed_by_server?(s2)).to be true
      s3 = raw(srv)
      expect(exchange(s3, "[" * 1000 + "]" * 1000)).to include(error_code: "invalid_json") # nesting limit
      expect(srv.metrics_snapshot[:errors_total].values.sum).to be >= 3
    end

    it "refuses connections beyond max_connections and closes idle ones" do
      srv = server(max_connections: 1, idle_timeout: 0.3)
      first = raw(srv)
      expect(exchange(first, JSON.generate({ op: "ping" }))[:pong]).to be true
      second = raw(srv)
      expect(JSON.parse(read_frame(second), symbolize_names: true)).to include(error_code: "too_many_connections")
      expect(JSON.parse(read_frame(first), symbolize_names: true)).to include(error_code: "idle_timeout")
      expect(closed_by_server?(first)).to be true
      expect(srv.metrics_snapshot[:rejected_connections_total]).to eq(1)
    end

    it "closes a slow client whose frame does not arrive whole in time" do
      srv = server(slow_timeout: 0.3)
      s = raw(srv)
      s.write(encode_frame('{"op":"ping"}')[0, 6])
      reply = JSON.parse(read_frame(s), symbolize_names: true)
      expect(reply).to include(ok: false, error_code: "bad_frame")
      expect(reply[:error]).to match(/slow client/)
      expect(closed_by_server?(s)).to be true
    end

    it "survives random bytes, truncated frames and random JSON (a small fuzz run)" do
      srv = server(max_frame_bytes: 64 * 1024)
      rng = Random.new(Integer(ENV.fetch("FUZZ_SEED", RSpec.configuration.seed)))
      200.times do
        s = raw(srv)
        case rng.rand(4)
        when 0 then s.write(rng.bytes(rng.rand(1..64)))
        when 1 then s.write(encode_frame(rng.bytes(rng.rand(0..256)))[0, rng.rand(1..20)])
        when 2 then s.write(encode_frame(rng.bytes(rng.rand(0..256))))
        else
          junk = { op: %w[write_fact call replay subscribe ping].sample(random: rng), fact: rng.rand(3).zero? ? nil : { store: rng.bytes(3).unpack1("H*"), key: rng.rand(100) },
                   method: %w[write read query nope].sample(random: rng), args: rng.rand(2).zero? ? "{}" : rng.bytes(8).unpack1("H*") }
          s.write(encode_frame(JSON.generate(junk)))
        end
        s.close_write
        s.read rescue nil # rubocop:disable Style/RescueModifier
        s.close
      end
      expect(connect(srv).ping).to be true
      expect(srv.metrics_snapshot[:active_connections]).to be <= 1
    end
  end

  describe "HTTP front door (start_with_adapters)" do
    def http(srv)
      port = srv.adapters.first.port
      Net::HTTP.start("127.0.0.1", port) { |h| yield h }
    end

    it "serves dispatch, health, ready, Prometheus metrics, the status page and SSE over the same store" do
      srv = server.start_with_adapters(http_port: 0)
      remote = connect(srv)
      remote.write(store: :tasks, key: "before", value: 1)
      http(srv) do |h|
        expect(JSON.parse(h.get("/v1/health").body)).to include("status" => "ready", "backend" => "memory")
        expect(h.get("/v1/ready").code).to eq("200")
        prom = h.get("/v1/metrics?format=prometheus")
        expect(prom["Content-Type"]).to start_with("text/plain")
        expect(prom.body).to match(/^igniter_ledger_active_connections \d+$/)
        # labelled by op on the Rust server, by key by the Ruby engine's generic writer
        expect(prom.body).to match(/^igniter_ledger_requests_total\{(op|key)="call"\} \d+$/)
        expect(h.get("/").body).to include("<title>igniter-ledger</title>")
        res = h.post("/v1/dispatch", JSON.generate({ protocol: "igniter_store", schema_version: 1, request_id: "r",
                                                     op: "read", packet: { store: "tasks", key: "before" } }))
        expect(JSON.parse(res.body).dig("result", "value")).to eq(1)
      end
      # SSE: replays from Last-Event-ID, then delivers a live write made through the TCP server
      sock = TCPSocket.new("127.0.0.1", srv.adapters.first.port)
      sock.write("GET /v1/events?store=tasks HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n")
      buf = +""
      buf << sock.readpartial(4096) until buf.include?("before")
      remote.write(store: :tasks, key: "live", value: 2)
      buf << sock.readpartial(4096) until buf.include?("live")
      expect(buf).to start_with("HTTP/1.1 200")
      expect(buf.scan(/^id: (\d+)$/).flatten.map(&:to_i)).to eq([1, 2])
      sock.close
    end

    it "enforces the token, the body limit and answers malformed requests with 400" do
      srv = server(token: "t0k").start_with_adapters(http_port: 0)
      http(srv) do |h|
        expect(h.get("/v1/health").code).to eq("401")
        expect(h.get("/v1/health", "Authorization" => "Bearer t0k").code).to eq("200")
        expect(h.get("/v1/health?token=t0k").code).to eq("200")
        expect(h.get("/").code).to eq("200")
      end
      port = srv.adapters.first.port
      s = TCPSocket.new("127.0.0.1", port)
      s.write("GARBAGE\r\n\r\n")
      expect(s.read).to start_with("HTTP/1.1 400")
      s.close
      s = TCPSocket.new("127.0.0.1", port)
      s.write("POST /v1/dispatch HTTP/1.1\r\nContent-Length: #{100 * 1024 * 1024}\r\nAuthorization: Bearer t0k\r\n\r\n")
      expect(s.read).to start_with("HTTP/1.1 413")
      s.close
      s = TCPSocket.new("127.0.0.1", port)
      s.write("GET /v1/health HTTP/1.1\r\n" + ("X-Pad: #{"a" * 1000}\r\n" * 40))
      expect(s.read).to start_with("HTTP/1.1 431")
      s.close
    end
  end
end
