# frozen_string_literal: true

require_relative "spec_helper"

begin
  require "rack"
  require "rack/lint"
  require "rack/mock"
rescue LoadError
  nil
end

# HTTPAdapter#rack_app is a Rack app that others mount in their own stacks: checked by
# Rack::Lint (the rack gem's conformance checker; Debian's ruby-rack, which .ci/run installs).
RSpec.describe "HTTPAdapter#rack_app under Rack::Lint" do
  before { skip "the rack gem is not installed (apt-get install ruby-rack)" unless defined?(Rack::Lint) }

  let(:store) { Igniter::Ledger.memory }
  let(:feed) { Igniter::Ledger::ChangefeedBuffer.new }
  let(:app) do
    adapter = Igniter::Ledger::HTTPAdapter.new(interpreter: store.protocol, changefeed_provider: -> { feed })
    Rack::Lint.new(adapter.rack_app)
  end

  def envelope(op, packet)
    JSON.generate({ protocol: "igniter_store", schema_version: 1, request_id: "r", op: op, packet: packet })
  end

  it "answers dispatch, health, metadata, metrics, 404 and 405 as valid Rack responses" do
    req = Rack::MockRequest.new(app)
    res = req.post("/v1/dispatch", input: envelope(:write, { store: "tasks", key: "t1", value: { n: 1 } }))
    expect(res.status).to eq(200)
    expect(JSON.parse(res.body)["status"]).to eq("ok")
    expect(store.read(store: :tasks, key: "t1")).to eq(n: 1)
    expect(JSON.parse(req.get("/v1/health").body)["status"]).to eq("ready")
    expect(JSON.parse(req.get("/v1/metadata").body)).to have_key("stores")
    expect(req.get("/v1/metrics?format=prometheus").body).to include("# TYPE")
    expect(req.get("/nope").status).to eq(404)
    expect(req.delete("/v1/health").status).to eq(405)
    expect(req.post("/v1/dispatch", input: "{").status).to eq(400)
  end

  it "streams SSE frames through Lint and releases the subscription on close" do
    feed.emit(Igniter::Ledger::Fact.build(store: :tasks, key: "a", value: {}))
    status, headers, body = app.call(Rack::MockRequest.env_for("/v1/events", "HTTP_LAST_EVENT_ID" => "0"))
    expect(status).to eq(200)
    expect(headers["Content-Type"]).to eq("text/event-stream")
    chunks = Queue.new
    reader = Thread.new { body.each { |c| chunks << c } }
    expect(chunks.pop).to start_with("id: 1\nevent: fact_committed\ndata: ")
    feed.emit(Igniter::Ledger::Fact.build(store: :tasks, key: "b", value: {}))
    expect(chunks.pop).to include('"key":"b"')
    body.close
    reader.join(2)
    expect(feed.subscriber_count).to eq(0)
  end
end
