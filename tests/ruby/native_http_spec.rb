# frozen_string_literal: true

require_relative "spec_helper"
require "net/http"

# HTTPAdapter#start_async serves its Rack app over the Rust HTTP listener in this
# process (NativeHTTPServer): requests reach the app on Ruby threads, SSE streams chunk
# by chunk, and the listener's limits answer before the app is called.
RSpec.describe "HTTPAdapter#start_async over the Rust HTTP listener" do
  around { |example| Timeout.timeout(60) { example.run } }

  let(:feed) { Igniter::Ledger::ChangefeedBuffer.new }
  let(:store) { Igniter::Ledger::LedgerStore.new(changefeed: feed) }

  after do
    @adapter&.stop
    store.close
  end

  def start(**opts)
    @adapter = Igniter::Ledger::HTTPAdapter.new(interpreter: store.protocol, port: 0,
                                                changefeed_provider: -> { feed }, **opts).start_async
  end

  def envelope(op, packet)
    JSON.generate({ protocol: "igniter_store", schema_version: 1, request_id: "r", op: op, packet: packet })
  end

  it "serves dispatch, health, the page and SSE (replay, then live) through the app" do
    adapter = start
    expect(adapter.instance_variable_get(:@server)).to be_a(Igniter::Ledger::NativeHTTPServer)
    Net::HTTP.start("127.0.0.1", adapter.port) do |h|
      res = h.post("/v1/dispatch", envelope(:write, { store: "tasks", key: "t1", value: { n: 1 } }))
      expect(res.code).to eq("200")
      expect(JSON.parse(res.body)["status"]).to eq("ok")
      expect(JSON.parse(h.get("/v1/health").body)["status"]).to eq("ready")
      expect(h.get("/").body).to include("<title>igniter-ledger</title>")
      expect(h.get("/nope").code).to eq("404")
    end
    expect(store.read(store: :tasks, key: "t1")).to eq(n: 1)

    sock = TCPSocket.new("127.0.0.1", adapter.port)
    sock.write("GET /v1/events?store=tasks HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n")
    buf = +""
    buf << sock.readpartial(4096) until buf.include?("t1")
    store.write(store: :tasks, key: "live", value: { n: 2 })
    buf << sock.readpartial(4096) until buf.include?("live")
    expect(buf).to start_with("HTTP/1.1 200")
    expect(buf).to include("text/event-stream")
    expect(buf.scan(/^id: (\d+)$/).flatten.map(&:to_i)).to eq([1, 2])
    sock.close
    # the stream's subscription is released once the client is gone
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    sleep 0.05 until feed.subscriber_count.zero? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    expect(feed.subscriber_count).to eq(0)
  end

  it "refuses a body over max_body_bytes with 413 and closes, and stops listening on stop" do
    adapter = start(max_body_bytes: 1024)
    port = adapter.port
    s = TCPSocket.new("127.0.0.1", port)
    s.write("POST /v1/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: #{10 * 1024 * 1024}\r\n\r\n")
    expect(s.read).to start_with("HTTP/1.1 413")
    s.close
    adapter.stop
    @adapter = nil
    expect { TCPSocket.new("127.0.0.1", port).close }.to raise_error(Errno::ECONNREFUSED)
  end

  it "keeps the pure-Ruby HTTPServer as a fallback (engine: :ruby)" do
    adapter = start(engine: :ruby)
    expect(adapter.instance_variable_get(:@server)).to be_a(Igniter::Ledger::HTTPServer)
    expect(JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{adapter.port}/v1/health")))["status"]).to eq("ready")
  end
end
