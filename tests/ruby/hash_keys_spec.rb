# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "hash_keys: the reference gem's Symbol keys, opt-in" do
  L = Igniter::Ledger unless defined?(L)

  around do |ex|
    before = Igniter::Ledger.hash_keys
    ex.run
  ensure
    Igniter::Ledger.hash_keys = before
  end

  let(:value) { { "available_seconds" => 5, "label" => "desk", "windows" => [{ "from" => 9 }], 7 => "int", sym: :kept } }
  let(:symbolized) { { available_seconds: 5, label: "desk", windows: [{ from: 9 }], 7 => "int", sym: :kept } }

  it "keeps String keys by default (type-faithful)" do
    store = L::LedgerStore.new
    expect(store.hash_keys).to eq(:keep)
    store.write(store: :slots, key: "s1", value: value)
    expect(store.read(store: :slots, key: "s1")).to eq(value)
  end

  it "per store: String keys of value, producer and derivation become Symbols at every depth" do
    store = L::LedgerStore.new(hash_keys: :symbolize)
    f = store.write(store: :slots, key: "s1", value: value, producer: { "system" => "x" },
                    derivation: { "name" => "d", "inputs" => [{ "id" => 1 }] })
    expect(f.value).to eq(symbolized)
    expect(f.producer).to eq(system: "x")
    expect(f.derivation).to eq(name: "d", inputs: [{ id: 1 }])
    expect(store.read(store: :slots, key: "s1")[:available_seconds]).to eq(5)
    a = store.append(history: :events, event: { "kind" => "made" })
    expect(a.value).to eq(kind: "made")
    t = store.transaction { |tx| tx.write(store: :slots, key: "s2", value: { "n" => 1 }) }
    expect(t.first.value).to eq(n: 1)
    expect(store.write(store: :slots, key: "s3", value: "a String value").value).to eq("a String value")
  end

  it "finds partitions and scopes named with String keys" do
    store = L::LedgerStore.new(hash_keys: :symbolize)
    store.append(history: :logs, event: { "tracker_id" => "sleep" }, partition_key: "tracker_id")
    store.append(history: :logs, event: { "tracker_id" => "sleep" })
    expect(store.history_partition(store: :logs, partition_key: "tracker_id", partition_value: "sleep").size).to eq(2)
    expect(store.history_partition(store: :logs, partition_key: :tracker_id, partition_value: "sleep").size).to eq(2)
    store.register_path(L::AccessPath.new(store: :tasks, scope: :open, filters: { "status" => "open" }))
    store.write(store: :tasks, key: "t1", value: { "status" => "open" })
    expect(store.query(store: :tasks, scope: :open).map(&:key)).to eq(["t1"])
  end

  it "refuses a Hash whose keys collide once symbolized, writing nothing" do
    store = L::LedgerStore.new(hash_keys: :symbolize)
    expect { store.write(store: :s, key: "k", value: { "a" => 1, a: 2 }) }.to raise_error(ArgumentError)
    expect(store.fact_count).to eq(0)
  end

  it "process-wide: Igniter::Ledger.hash_keys = :symbolize is the default of stores made later" do
    Igniter::Ledger.hash_keys = :symbolize
    expect(Igniter::Store.memory.hash_keys).to eq(:symbolize)
    expect(L::LedgerStore.new.hash_keys).to eq(:symbolize)
    expect(L::LedgerStore.new(hash_keys: :keep).hash_keys).to eq(:keep)
    Dir.mktmpdir do |dir|
      L.open(File.join(dir, "l.wal")) do |s|
        expect(s.hash_keys).to eq(:symbolize)
        s.write(store: :a, key: "k", value: { "x" => 1 })
      end
      Igniter::Ledger.hash_keys = :keep
      L.open(File.join(dir, "l.wal")) do |s|
        expect(s.hash_keys).to eq(:keep)
        expect(s.read(store: :a, key: "k")).to eq(x: 1) # stored symbolized, stays so
        s.write(store: :a, key: "k2", value: { "x" => 1 })
        expect(s.read(store: :a, key: "k2")).to eq("x" => 1)
      end
    end
  end

  it "refuses an unknown mode" do
    expect { Igniter::Ledger.hash_keys = :strings }.to raise_error(ArgumentError, /hash_keys/)
    expect { L::LedgerStore.new(hash_keys: :strings) }.to raise_error(ArgumentError, /hash_keys/)
  end
end
