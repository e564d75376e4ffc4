# frozen_string_literal: true

require_relative "spec_helper"
require "json"
require "tmpdir"

RSpec.describe "the Ledger Open Protocol from Ruby" do
  let(:store) { Igniter::Ledger::LedgerStore.new }
  let(:proto) { store.protocol }

  def envelope(op, packet = {}, request_id: "r1")
    { protocol: :igniter_store, schema_version: 1, request_id: request_id, op: op, packet: packet }
  end

  it "is one interpreter per store, over that store" do
    expect(store.protocol).to be(proto)
    proto.write(store: :tasks, key: "t1", value: { status: :open })
    expect(store.read(store: :tasks, key: "t1")).to eq(status: :open)
    expect(proto.store).to be(store)
  end

  it "keeps values type-faithful both ways" do
    value = { "string key" => "s", sym: :open, int: 2**40, float: 1.5, list: [nil, true, "x".b], nested: { a: [1] } }
    proto.write(store: :t, key: "k", value: value)
    expect(proto.read(store: :t, key: "k")).to eq(value)
    expect(proto.query(store: :t).first[:value][:sym]).to eq(:open)
  end

  it "registers descriptors with receipts; dedup ignores key order" do
    r = store.register_descriptor(schema_version: 1, kind: :store, name: :widgets, key: :id, fields: [])
    expect(r).to be_accepted
    again = store.register_descriptor(fields: [], key: :id, name: :widgets, kind: :store, schema_version: 1)
    expect(again).to be_deduplicated
    expect(proto.descriptor_snapshot[:stores][:widgets]).to include(name: :widgets, key: :id)
  end

  describe "bad input changes nothing" do
    it "rejects descriptors of unknown kind, missing fields, too deep or too large" do
      before = proto.descriptor_snapshot
      deep = 100.times.reduce({}) { |acc, _| { nested: acc } }
      [
        [{ kind: :wormhole, name: :x }, /wormhole/],
        [{ kind: :store, name: :x }, /key/],
        [{ kind: :store, name: :x, key: :id, doc: deep }, /deeper/],
        [{ kind: :store, name: :x, key: :id, doc: "x" * 300_000 }, /too large/],
        [{ kind: :store, name: :x, key: :id, at: Time.now }, /Time/],
        ["not a hash", /Hash/]
      ].each do |descriptor, message|
        r = proto.register(descriptor)
        expect(r).to be_rejected
        expect(r.errors.first).to match(message)
      end
      expect(proto.descriptor_snapshot).to eq(before)
    end

    it "raises ProtocolError (an ArgumentError) naming the field for a bad write" do
      expect { proto.write(key: "k", value: 1) }
        .to raise_error(Igniter::Ledger::ProtocolError, /store/) { |e| expect(e).to be_a(ArgumentError) }
      expect(store.fact_count).to eq(0)
    end

    it "answers malformed envelopes with an error response, never an exception" do
      [
        ["not a hash", /Hash/],
        [{ protocol: :igniter_store, request_id: "r1", op: :write }, /packet/],
        [envelope(:write).merge(schema_version: 2), /schema_version/],
        [envelope(:write).merge(protocol: :http), /protocol/],
        [envelope(:teleport), /teleport/],
        [envelope(:write, { store: :t, key: "k", value: Time.now }), /Time/],
        [envelope(:query, { where: {} }), /store/]
      ].each do |env, message|
        resp = proto.dispatch(env)
        expect(resp[:status]).to eq(:error)
        expect(resp[:error]).to match(message)
        expect(resp[:request_id]).to eq("r1") if env.is_a?(Hash)
      end
      expect(store.fact_count).to eq(0)
    end
  end

  it "dispatches JSON envelopes (plain JSON on the wire)" do
    out = JSON.parse(proto.wire.dispatch_json(JSON.generate(envelope(:write, { store: "tasks", key: "t1",
                                                                                value: { status: "open" } }))))
    expect(out["status"]).to eq("ok")
    expect(out["result"]["status"]).to eq("accepted")
    read = JSON.parse(proto.wire.dispatch_json(JSON.generate(envelope(:read, { store: "tasks", key: "t1" }))))
    expect(read["result"]).to eq("found" => true, "value" => { "status" => "open" })
    expect(JSON.parse(proto.wire.dispatch_json("{oops"))["status"]).to eq("error")
    expect(JSON.parse(proto.wire.dispatch_json("{\"op\":\"\xff\"}".b))["error"]).to match(/UTF-8/)
  end

  it "gives a sync profile, full then incremental" do
    proto.write(store: :a, key: "1", value: { n: 1 })
    full = proto.sync_hub_profile
    expect(full).to be_full
    expect(full.facts.size).to eq(1)
    proto.write(store: :a, key: "2", value: { n: 2 })
    inc = proto.sync_hub_profile(cursor: full.next_cursor)
    expect(inc).to be_incremental
    expect(inc.facts.map { |f| f[:key] }).to eq(["2"])
  end

  it "reports an observability snapshot and empty compaction activity" do
    proto.write(store: :a, key: "1", value: 1)
    snap = proto.observability_snapshot
    expect(snap).to include(fact_count: 1, backend: :memory, stores: [:a])
    expect(proto.compaction_activity).to include(count: 0, activity: [])
  end

  describe "MCPAdapter" do
    it "serves write tools only when named" do
      adapter = Igniter::Ledger::MCPAdapter.new(store)
      expect(adapter.call_tool(:write, store: "t", key: "k", value: 1)[:error]).to match(/not enabled/)
      writer = Igniter::Ledger::MCPAdapter.new(store, enabled_tools: %i[read write])
      expect(writer.call_tool(:write, store: "t", key: "k", value: { n: 1 })[:status]).to eq(:ok)
      expect(writer.call_tool(:read, store: "t", key: "k")[:result]).to eq(n: 1)
      expect { Igniter::Ledger::MCPAdapter.new(store, enabled_tools: [:rm_rf]) }.to raise_error(ArgumentError, /rm_rf/)
    end

    it "bounds query and replay" do
      5.times { |i| store.write(store: :e, key: "e#{i}", value: i) }
      adapter = Igniter::Ledger::MCPAdapter.new(store)
      expect(adapter.call_tool(:query, store: "e", limit: 5000)[:error]).to match(/limit/)
      expect(adapter.call_tool(:replay, limit: 1)[:error]).to match(/bounding/)
      r = adapter.call_tool(:replay, store: "e", limit: 2)[:result]
      expect(r).to include(count: 2, truncated: true)
      # The filter-only replay of the envelope stays allowed, as in the reference.
      expect(proto.dispatch(envelope(:replay, {}))[:result][:count]).to eq(5)
    end
  end

  it "records contractable observations and events through a store or a client" do
    [{ store: store }, { client: Igniter::Ledger::Protocol.new }].each do |target|
      sink = Igniter::Ledger::ContractableReceiptSink.new(**target)
      sink.record_observation(receipt_kind: :contractable_observation, observation_id: "o1", status: :ok)
      sink.record_observation(receipt_kind: :contractable_observation, observation_id: "o2", status: :error)
      sink.record_event(observation_id: "o1", event: :started)
      sink.record_event(observation_id: "o1", event: :failed, status: :error)
      sink.record_event(observation_id: "o2", event: :started)
      expect(sink.observation("o1")).to include(status: :ok)
      expect(sink.events_for("o1").map { |e| e[:event] }).to eq(%i[started failed])
      expect(sink.observations(status: :error).map { |o| o[:observation_id] }).to eq(["o2"])
      expect(sink.error_events.size).to eq(1)
      expect { sink.record_observation(receipt_kind: :other, observation_id: "x") }.to raise_error(ArgumentError)
    end
    expect(store.protocol.descriptor_snapshot[:histories]).to have_key(:contractable_events)
  end

  it "survives a reopen: the file ledger's facts are visible to a new interpreter" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "l.wal")
      Igniter::Ledger::LedgerStore.open(path) { |s| s.protocol.write(store: :tasks, key: "t1", value: { n: 1 }) }
      Igniter::Ledger::LedgerStore.open(path) do |s|
        expect(s.protocol.read(store: :tasks, key: "t1")).to eq(n: 1)
        expect(s.protocol.metadata_snapshot[:fact_stores]).to eq([:tasks])
      end
    end
  end
end
