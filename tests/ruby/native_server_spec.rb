# frozen_string_literal: true

require_relative "spec_helper"
require "net/http"
require "stringio"

# StoreServer.new(engine: :native): the Rust server crate running inside this Ruby
# process, driven by Ruby clients in the same process (so a GVL held while the server
# waits would stall them).
RSpec.describe "the native (Rust) server engine" do
  L = Igniter::Ledger unless defined?(L)

  def native(**opts)
    @servers ||= []
    (@servers << L::StoreServer.new(engine: :native, address: "127.0.0.1:0", logger: L::ServerLogger.new(nil), **opts)).last
  end

  # A hang fails the example instead of the run.
  around { |example| Timeout.timeout(60) { example.run } }

  after { (@servers || []).each(&:stop) }

  # The next item of a Queue, failing (instead of hanging) after `seconds`.
  def pop_within(queue, seconds = 5)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    loop do
      return queue.pop(true)
    rescue ThreadError
      raise "nothing arrived within #{seconds}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.01
    end
  end

  it "binds in new, serves the reference's NetworkBackend (write, replay, subscribe), reports health and metrics, stops" do
    Dir.mktmpdir do |dir|
      pid = File.join(dir, "n.pid")
      io = StringIO.new
      srv = L::StoreServer.new(engine: :native, address: "127.0.0.1:0", pid_file: pid, logger: L::ServerLogger.new(io, :info))
      @servers = [srv]
      expect(srv).to be_a(L::NativeStoreServer)
      expect(File.read(pid).strip).to eq(Process.pid.to_s)
      srv.start_async.wait_until_ready(timeout: 2)
      got = Queue.new
      sub = L::NetworkBackend.new(address: srv.bind_address)
      handle = sub.subscribe(stores: [:tasks]) { |f| got << f }
      nb = L::NetworkBackend.new(address: srv.bind_address)
      fact = L::Fact.build(store: :tasks, key: "t1", value: { n: 1 })
      nb.write_fact(fact)
      expect(pop_within(got).id).to eq(fact.id)
      expect(nb.replay.map(&:id)).to eq([fact.id])
      expect(srv.health_snapshot).to include(status: :ready, backend: "memory", transport: "tcp")
      expect(srv.metrics_snapshot[:facts_written]).to eq(1)
      expect(srv.observability_snapshot).to have_key(:changefeed)
      handle.close
      nb.close
      sub.close
      port = srv.port
      srv.stop
      expect { TCPSocket.new("127.0.0.1", port) }.to raise_error(Errno::ECONNREFUSED)
      expect(File.exist?(pid)).to be false
      events = io.string.lines.grep(/\A\[EVENT\] /).map { |l| JSON.parse(l.sub("[EVENT] ", ""))["event"] }
      expect(events).to include("connection_open")
      expect(io.string).to include("Listening on")
    end
  end

  it "serves Igniter::Ledger.connect (the ledger.* ops) with conflicts, transactions and history, and persists to a file" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "n.wal")
      srv = native(backend: :file, path: path)
      remote = L.connect("tcp://#{srv.bind_address}")
      first = remote.write(store: :tasks, key: "t1", value: { title: "a" })
      expect(remote.read(store: :tasks, key: "t1")).to eq(title: "a")
      expect { remote.write(store: :tasks, key: "t1", value: 1, expected: :none) }.to raise_error(L::ConflictError) { |e|
        expect([e.store, e.key, e.actual]).to eq([:tasks, "t1", first.id])
      }
      remote.write(store: :tasks, key: "t1", value: { title: "b" }, expected: first.id)
      facts = remote.transaction do |tx|
        tx.write(store: :acct, key: "a", value: 1)
        tx.append(history: :log, event: { e: 1 })
      end
      expect(facts.map(&:store)).to eq(%i[acct log])
      expect(remote.history(store: :tasks, key: "t1").map(&:value)).to eq([{ title: "a" }, { title: "b" }])
      expect(remote.fact_count).to eq(4)
      remote.close
      srv.stop
      reopened = L::LedgerStore.open(path)
      expect(reopened.fact_count).to eq(4)
      expect(reopened.read_fact(store: :tasks, key: "t1").causation).to eq(first.id)
      reopened.close
    end
  end

  it "is StoreServer's default engine and serves a Ruby store of this process (#store)" do
    srv = L::StoreServer.new(address: "127.0.0.1:0", logger: L::ServerLogger.new(nil))
    @servers = [srv]
    expect(srv).to be_a(L::NativeStoreServer)
    remote = L.connect("tcp://#{srv.bind_address}")
    fact = remote.write(store: :tasks, key: "t1", value: { status: :open })
    expect(srv.store.read_fact(store: :tasks, key: "t1").id).to eq(fact.id)
    srv.store.write(store: :tasks, key: "t2", value: { status: :done })
    expect(remote.read(store: :tasks, key: "t2")).to eq(status: :done) # Symbols kept (RemoteCalls on the Ruby thread)
    remote.close
  end

  it "runs the store's Ruby rules and coercions for client requests on its Ruby thread, never on a server thread" do
    extend L::WireProtocol
    srv = native
    ran_on = Queue.new
    srv.store.register_derivation(source_store: :orders, target_store: :totals, target_key: "all",
                                  rule: lambda { |facts|
                                    ran_on << Thread.current.name
                                    { sum: facts.sum { |f| f.value[:amount] } }
                                  })
    srv.store.register_coercion(:orders) { |value, _version| value.merge(seen: true) }
    host, port = srv.bind_address.split(":")
    sock = TCPSocket.new(host, Integer(port))
    ask = lambda do |req|
      sock.write(encode_frame(JSON.generate(req)))
      JSON.parse(read_frame(sock), symbolize_names: true)
    end
    # plain-JSON ledger.* ops: answered in Rust, their ledger work handed to the Ruby thread
    expect(ask.call({ op: "ledger.write", store: "orders", key: "o1", value: { amount: 5 } })[:ok]).to be true
    expect(ask.call({ op: "ledger.write", store: "orders", key: "o2", value: { amount: 7 } })[:ok]).to be true
    expect(srv.store.read(store: :totals, key: "all")).to eq(sum: 12)
    expect(pop_within(ran_on)).to eq("igniter-ledger server ruby work")
    expect(ask.call({ op: "ledger.read", store: "orders", key: "o1" })[:value]).to eq(amount: 5, seen: true)
    # the reference's NetworkBackend (legacy write_fact) too
    nb = L::NetworkBackend.new(address: srv.bind_address)
    nb.write_fact(L::Fact.build(store: :orders, key: "o3", value: { amount: 1 }))
    expect(srv.store.read(store: :totals, key: "all")).to eq(sum: 13)
    nb.close
    sock.close
  end

  it "hands its changefeed to Ruby: snapshot and subscribers on Ruby threads see writes from clients" do
    srv = native(changefeed: { max_size: 50 })
    seen = Queue.new
    sub = srv.changefeed.subscribe(stores: [:orders]) { |event| seen << [event.key, event.fact.value] }
    remote = L.connect("tcp://#{srv.bind_address}")
    remote.write(store: :orders, key: "o1", value: { amount: 5 })
    expect(pop_within(seen)).to eq(["o1", { amount: 5 }])
    expect(srv.changefeed.snapshot[:max_size]).to eq(50)
    expect(srv.observability_snapshot[:changefeed][:emitted_total]).to be >= 1
    sub.close
    remote.close
  end

  it "serves HTTP and SSE with http_port:" do
    srv = native(http_port: 0)
    remote = L.connect("tcp://#{srv.bind_address}")
    remote.write(store: :tasks, key: "k", value: 1)
    Net::HTTP.start("127.0.0.1", srv.http_port) do |h|
      expect(JSON.parse(h.get("/v1/health").body)["status"]).to eq("ready")
      expect(h.get("/").body).to include("igniter-ledger")
    end
    sock = TCPSocket.new("127.0.0.1", srv.http_port)
    sock.write("GET /v1/events?cursor=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = +""
    buf << sock.readpartial(4096) until buf.include?("fact_committed")
    expect(buf).to include("id: 1")
    sock.close
    remote.close
  end

  it "keeps the GVL free while its event thread waits and while it drains" do
    srv = native
    ticks = 0
    ticker = Thread.new { loop { ticks += 1; sleep 0.001 } }
    sleep 0.5
    ticker.kill
    # the event thread waits in 0.2 s slices: with the GVL held it would leave this
    # thread a few ticks per second
    expect(ticks).to be > 40
    srv.drain(timeout: 1)
    expect(srv.ready?).to be false
  end
end
