# frozen_string_literal: true

require_relative "spec_helper"

# Time-travel reads (as_of: without valid_at:) are answered from a cache kept natively,
# seen through the store's ReadCache (@cache): lru_size counts its entries, lru_cap:
# bounds them, and clear / invalidate drop them.
RSpec.describe "time-travel read cache" do
  let(:store) { Igniter::Ledger::LedgerStore.new(lru_cap: 3, read_cache: 0) }
  let(:cache) { store.instance_variable_get(:@cache) }
  let(:later) { Process.clock_gettime(Process::CLOCK_REALTIME) + 10 }

  it "answers the same object until a write, even with the value cache off" do
    store.write(store: :r, key: "k", value: { v: 1 })
    first = store.read(store: :r, key: "k", as_of: later)
    expect(store.read(store: "r", key: :k, as_of: later)).to equal(first)
    expect(store.read(store: :r, key: "k", as_of: later, valid_at: later)).not_to equal(first)
    store.write(store: :r, key: "other", value: 0)
    again = store.read(store: :r, key: "k", as_of: later)
    expect(again).to eq(v: 1)
    expect(again).not_to equal(first)
  end

  it "is bounded by lru_cap:, least recently used first" do
    store.write(store: :r, key: "k", value: { v: 1 })
    kept = store.read(store: :r, key: "k", as_of: later)
    3.times { |i| store.read(store: :r, key: "k", as_of: later + i + 1) }
    expect(cache.lru_size).to eq(3)
    expect(store.read(store: :r, key: "k", as_of: later)).not_to equal(kept)
    store.read(store: :r, key: "k", as_of: later + 3)
    expect(cache.lru_size).to eq(3)
  end

  it "keeps no nil answers, and drops entries on invalidate, clear and register_coercion" do
    store.write(store: :r, key: "a", value: 1)
    store.write(store: :s, key: "b", value: 2)
    expect(store.read(store: :r, key: "missing", as_of: later)).to be_nil
    expect(cache.lru_size).to eq(0)
    store.read(store: :r, key: "a", as_of: later)
    store.read(store: :s, key: "b", as_of: later)
    cache.invalidate(store: :r, key: :a)
    expect(cache.lru_size).to eq(1)
    cache.clear
    expect(cache.lru_size).to eq(0)
    store.read(store: :s, key: "b", as_of: later)
    store.register_coercion(:s) { |v, _| v * 10 }
    expect(cache.lru_size).to eq(0)
    expect(store.read(store: :s, key: "b", as_of: later)).to eq(20)
  end

  it "is shared by the handles of one file" do
    a = Igniter::Ledger.open(wal_path, lru_cap: 2)
    b = Igniter::Ledger.open(wal_path)
    a.write(store: :r, key: "k", value: 1)
    first = a.read(store: :r, key: "k", as_of: later)
    expect(b.read(store: :r, key: "k", as_of: later)).to equal(first)
    b.close
    a.close
  end
end
