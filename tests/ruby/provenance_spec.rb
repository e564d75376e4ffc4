# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "provenance and the fact log" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  it "answers causation chains oldest first" do
    f1 = store.write(store: :r, key: "r1", value: 1)
    f2 = store.write(store: :r, key: "r1", value: 2)
    chain = store.causation_chain(store: :r, key: "r1")
    expect(chain).to eq([
                          { id: f1.id, value_hash: f1.value_hash[0, 12], causation: nil, transaction_time: f1.transaction_time },
                          { id: f2.id, value_hash: f2.value_hash[0, 12], causation: f1.id, transaction_time: f2.transaction_time }
                        ])
    expect(store.causation_chain(store: :r, key: "none")).to eq([])
  end

  it "answers lineage with a stable proof hash" do
    f1 = store.write(store: :r, key: "r1", value: 1)
    f2 = store.write(store: :r, key: "r1", value: 2, derivation: { rule: :sum, from: [f1.id] })
    l = store.lineage(store: :r, key: "r1")
    expect(l[:subject]).to eq(store: :r, key: "r1")
    expect(l[:depth]).to eq(2)
    expect(l[:chain].map { |e| e[:id] }).to eq([f1.id, f2.id])
    # derived_by lists the derivations of the store (none); the fact keeps its own.
    expect(l[:derived_by]).to eq([])
    expect(store.fact_by_id(l[:chain].last[:id]).derivation).to eq(rule: :sum, from: [f1.id])
    expect(l[:proof_hash]).to match(/\A\h{64}\z/)
    expect(store.lineage(store: :r, key: "r1")[:proof_hash]).to eq(l[:proof_hash])
    store.write(store: :r, key: "r1", value: 3)
    expect(store.lineage(store: :r, key: "r1")[:proof_hash]).not_to eq(l[:proof_hash])
    expect(store.lineage(store: :r, key: "none")).to include(depth: 0, chain: [], proof_hash: nil, derived_by: [])
  end

  it "keeps proof hashes across reopen" do
    proof = Igniter::Ledger.open(wal_path) do |s|
      2.times { |i| s.write(store: :r, key: "r1", value: i) }
      s.lineage(store: :r, key: "r1")[:proof_hash]
    end
    Igniter::Ledger.open(wal_path) { |s| expect(s.lineage(store: :r, key: "r1")[:proof_hash]).to eq(proof) }
  end

  it "finds facts by id" do
    f = store.write(store: :r, key: "r1", value: { a: 1 }, valid_time: 3)
    expect(store.fact_by_id(f.id)).to eq(f)
    expect(store.fact_by_id(f)).to eq(f)
    [nil, "", "  ", "nope", "00000000-0000-0000-0000-000000000000", 42].each do |id|
      expect(store.fact_by_id(id)).to be_nil
      expect(store.fact_ref(id)).to be_nil
    end
    expect(store.fact_ref(f.id)).to eq(id: f.id, store: :r, key: "r1", transaction_time: f.transaction_time,
                                       valid_time: 3.0, value_hash: f.value_hash)
  end

  it "counts and lists every fact with inclusive bounds" do
    facts = Array.new(5) { |i| i.even? ? store.write(store: :a, key: "k", value: i) : store.append(history: :b, event: i) }
    expect(store.fact_count).to eq(5)
    expect(store.fact_log_all).to eq(facts)
    expect(store.fact_log_all(since: facts[1].transaction_time)).to eq(facts[1..])
    expect(store.fact_log_all(as_of: facts[3].transaction_time)).to eq(facts[..3])
    expect(store.fact_log_all(since: facts[1].transaction_time, as_of: facts[2].transaction_time)).to eq(facts[1..2])
    expect(store.fact_log_all(since: facts[4].transaction_time + 1)).to eq([])
  end
end
