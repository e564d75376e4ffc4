# frozen_string_literal: true

require_relative "spec_helper"

# The protocol answers from the engines of the store it runs over: relations through the
# derived-state engine, retention and compaction activity from the retention engine, the
# changefeed in the observability snapshot, and query through access_path field indexes.
RSpec.describe "the protocol over the store's engines" do
  let(:feed) { Igniter::Ledger::ChangefeedBuffer.new(max_size: 300) }
  let(:store) { Igniter::Ledger::LedgerStore.new(changefeed: feed) }
  let(:proto) { store.protocol }

  def relation(name, to:, field:)
    { schema_version: 1, kind: :relation, name: name, from: { store: :projects, key: :id },
      to: { store: to, field: field }, cardinality: :many }
  end

  it "registers a relation descriptor with the store: both resolve from one index" do
    proto.write(store: :tasks, key: "t0", value: { project_id: "p1", title: "Zero" })
    expect(proto.register(relation(:project_tasks, to: :tasks, field: :project_id))).to be_accepted
    proto.write(store: :tasks, key: "t1", value: { project_id: "p1", title: "One" })
    proto.write(store: :tasks, key: "t2", value: { project_id: "p2", title: "Two" })

    expect(proto.resolve_items(:project_tasks, from: "p1").map { |i| i[:key] }).to eq(%w[t0 t1])
    expect(store.resolve(:project_tasks, from: "p1").map { |v| v[:title] }).to eq(%w[Zero One])
    expect(store.read(store: :__rel_project_tasks, key: "p1")[:keys]).to eq(%w[t0 t1])
    scatters = proto.metadata_snapshot[:scatters].select { |s| s[:source_store] == :tasks }
    expect(scatters.size).to eq(1)
  end

  it "rejects a relation the store holds under another definition, and changes nothing" do
    store.register_relation(:owned, source: :tasks, partition: :owner_id, target: :owners)
    receipt = proto.register(relation(:owned, to: :tasks, field: :project_id))
    expect(receipt).to be_rejected
    expect(proto.descriptor_snapshot[:relations]).to be_empty
    expect(proto.metadata_snapshot[:relations][:owned]).to include(partition: :owner_id)
  end

  it "reports the retention engine's policies and activity" do
    store.set_retention(:sensors, strategy: :ephemeral)
    2.times { |i| store.write(store: :sensors, key: "s", value: { v: i }) }
    store.compact

    activity = proto.compaction_activity
    expect(activity[:count]).to eq(1)
    expect(activity[:activity].first).to include(kind: :retention_compaction, store: :sensors,
                                                 reason: :ephemeral, fact_count: 1)
    expect(proto.compaction_activity(kind: :exact_prune)[:count]).to eq(0)
    expect(proto.metadata_snapshot[:retention]).to eq(sensors: { strategy: :ephemeral, duration: nil })
    envelope = { protocol: :igniter_store, schema_version: 1, request_id: "a1", op: :compaction_activity,
                 packet: { store: :sensors } }
    expect(proto.dispatch(envelope)[:result][:count]).to eq(1)
  end

  it "shows the changefeed and the derived engine in the observability snapshot" do
    3.times { |i| proto.write(store: :tasks, key: "t#{i}", value: { n: i }) }
    snap = proto.observability_snapshot
    expect(snap[:changefeed]).to include(head_sequence: 3, attached: true, emitted_total: 3, max_size: 300)
    expect(snap[:alerts]).to eq([])
    expect(snap[:derived]).to include(derivations: 0, failures: 0)
    expect(snap[:retention]).to include(activity_count: 0)
  end

  it "answers a query on an access_path field from the field index, as the scan does" do
    proto.register(schema_version: 1, kind: :access_path, name: :by_owner, store: :tasks, fields: [:owner])
    plain = Igniter::Ledger::Protocol.new(store)
    60.times do |i|
      owner = i % 3 == 0 ? "u#{i % 7}" : :"u#{i % 7}"
      proto.write(store: :tasks, key: format("t%02d", i % 40), value: { owner: owner, n: i })
    end
    [{ where: { owner: "u3" } }, { where: { owner: :u3 }, limit: 2 },
     { where: { owner: "u1" }, order: { n: :desc }, limit: 3 }].each do |q|
      got = proto.query(store: :tasks, **q)
      expect(got).to eq(plain.query(store: :tasks, **q))
      expect(got).not_to be_empty
    end
  end
end
