# frozen_string_literal: true

require_relative "spec_helper"

# Drop-in compatibility with the igniter-ledger 0.5.2 gem, checked without the reference's
# own spec files (those run from script/test when ../shared/upstream exists).
RSpec.describe "drop-in compatibility with the 0.5.2 gem" do
  let(:store) { Igniter::Store::IgniterStore.new }

  it "uses the reference's constant names, with the new names as aliases" do
    expect(Igniter::Ledger).to equal(Igniter::Store)
    expect(Igniter::Ledger::LedgerStore).to equal(Igniter::Store::IgniterStore)
    expect(Igniter::Ledger::LedgerStore.name).to eq("Igniter::Store::IgniterStore")
    expect(Igniter::Ledger::Error.name).to eq("Igniter::Store::Error")
    expect(defined?(Set)).to eq("constant") # the reference loaded "set"
  end

  it "raises an ArgumentError naming the scope for an unknown scope" do
    expect { store.query(store: :tasks, scope: :unknown) }.to raise_error(ArgumentError, /scope=:unknown/)
    expect { store.query(store: :tasks, scope: :unknown) }.to raise_error(Igniter::Store::UnknownScopeError)
    caught = begin
      store.query(store: :tasks, scope: :unknown)
    rescue Igniter::Ledger::Error => e
      e
    end
    expect(caught).to be_a(ArgumentError) # and `rescue Igniter::Ledger::Error` catches it
  end

  it "accepts a point AccessPath with filters: nil and Set consumers" do
    seen = []
    store.register_path(Igniter::Store::AccessPath.new(store: :r, lookup: :primary_key, scope: nil, filters: nil,
                                                       cache_ttl: 60, consumers: Set[->(s, k) { seen << [s, k] }]))
    store.write(store: :r, key: "r1", value: 1)
    expect(seen).to eq([[:r, "r1"]])
  end

  it "notifies scope consumers only once the scope has been queried" do
    fired = []
    store.register_path(Igniter::Store::AccessPath.new(store: :t, scope: :open, filters: { s: :open },
                                                       consumers: [->(_st, sc) { fired << sc }]))
    store.write(store: :t, key: "a", value: { s: :open })
    expect(fired).to be_empty
    store.query(store: :t, scope: :open)
    store.write(store: :t, key: "a", value: { s: :done })
    expect(fired).to eq([:open])
  end

  it "answers a repeated cache_ttl query with the same Array until something is written" do
    store.register_path(Igniter::Store::AccessPath.new(store: :i, scope: :on, filters: { on: true }, cache_ttl: 60))
    store.write(store: :i, key: "a", value: { on: true })
    first = store.query(store: :i, scope: :on)
    expect(store.query(store: :i, scope: :on)).to equal(first)
    store.write(store: :i, key: "b", value: { on: true })
    expect(store.query(store: :i, scope: :on).map(&:key)).to eq(%w[a b])
  end

  it "hands back, from fact_by_id, the very Fact that write/append/transaction returned" do
    w = store.write(store: :a, key: "k", value: 1)
    a = store.append(history: :h, event: 2)
    t = store.transaction { |tx| tx.write(store: :a, key: "j", value: 3) }.first
    [w, a, t].each { |f| expect(store.fact_by_id(f.id)).to equal(f) }
    expect(store.fact_by_id(nil)).to be_nil
    expect(store.fact_by_id("")).to be_nil
  end

  it "keeps that identity for the last 4096 writes; an older fact comes back equal, as a new object" do
    first = store.write(store: :a, key: "k", value: 0)
    4096.times { |i| store.write(store: :a, key: "k", value: i + 1) }
    last = store.write(store: :a, key: "k", value: -1)
    expect(store.fact_by_id(last.id)).to equal(last)
    old = store.fact_by_id(first.id)
    expect(old).to eq(first)
    expect(old).not_to equal(first)
  end

  describe "ReadCache" do
    it "is an LRU over time-travel entries that promotes what it serves" do
      c = Igniter::Store::ReadCache.new(lru_cap: 2)
      c.put(store: :s, key: "a", fact: :fa, as_of: 1.0)
      c.put(store: :s, key: "b", fact: :fb, as_of: 2.0)
      expect(c.get(store: :s, key: "a", as_of: 1.0)).to eq(:fa) # a is now the most recent
      c.put(store: :s, key: "c", fact: :fc, as_of: 3.0)         # evicts b
      expect(c.get(store: :s, key: "b", as_of: 2.0)).to be_nil
      expect(c.lru_size).to eq(2)
      c.put(store: :s, key: "a", fact: :now)                     # current state: not counted
      expect(c.lru_size).to eq(2)
      c.invalidate(store: :s, key: "a")
      expect([c.get(store: :s, key: "a"), c.get(store: :s, key: "a", as_of: 1.0), c.lru_size]).to eq([nil, nil, 1])
    end

    it "serves a store's repeated time-travel reads, and never after a write" do
      s = Igniter::Store::IgniterStore.new(lru_cap: 3)
      s.write(store: :r, key: "k", value: { v: 1 })
      later = Process.clock_gettime(Process::CLOCK_REALTIME) + 10
      first = s.read(store: :r, key: "k", as_of: later)
      expect(s.read(store: :r, key: "k", as_of: later)).to equal(first)
      s.write(store: :r, key: "k", value: { v: 2 })
      expect(s.read(store: :r, key: "k", as_of: later)).to eq(v: 2)
      4.times { |i| s.read(store: :r, key: "k", as_of: later + i + 1) }
      expect(s.instance_variable_get(:@cache).lru_size).to eq(3)
    end
  end

  describe "Fact.from_h" do
    it "rebuilds a fact from its to_h, keeping id, times and causation" do
      f = store.write(store: :a, key: "k", value: { x: 1 }, producer: { by: :me }, valid_time: 5.0)
      g = Igniter::Store::Fact.from_h(f.to_h)
      expect(g).to eq(f)
      expect([g.id, g.transaction_time, g.valid_time, g.causation, g.producer]).to eq(
        [f.id, f.transaction_time, 5.0, nil, { by: :me }]
      )
    end

    it "accepts the legacy timestamp/term keys, String keys and non-UUID ids" do
      h = { "id" => "fact-1", "store" => :items, "key" => "a", "value" => { s: 1 }, "timestamp" => 1_714_200_000.0,
            "term" => 1_714_200_123.5, "causation" => "fact-0" }
      f = Igniter::Store::Fact.from_h(h)
      expect([f.transaction_time, f.valid_time]).to eq([1_714_200_000.0, 1_714_200_123.5])
      expect(Igniter::Store::Fact.from_h(h).id).to eq(f.id) # the same name-based id each time
      expect(f.causation).to eq(Igniter::Store::Fact.from_h(h.merge("id" => "fact-0")).id)
    end
  end

  describe "backend: objects answering write_fact, and replay" do
    let(:backend) do
      Class.new do
        attr_reader :facts

        def initialize = @facts = []
        def write_fact(fact) = @facts << fact
      end.new
    end

    it "hands every committed fact to the backend in commit order" do
      s = Igniter::Store::IgniterStore.new(backend: backend)
      a = s.write(store: :a, key: "k", value: 1)
      b = s.append(history: :h, event: 2)
      c, d = s.transaction { |tx| tx.write(store: :a, key: "k", value: 3); tx.write(store: :a, key: "j", value: 4) }
      expect(backend.facts).to eq([a, b, c, d])
      expect { Igniter::Store::IgniterStore.new(backend: Object.new) }.to raise_error(ArgumentError, /write_fact/)
      expect(s.__send__(:exact_prune_unsupported)).to include(status: :unsupported,
                                                              reason: :backend_does_not_support_exact_prune)
      expect(store.__send__(:exact_prune_unsupported)).to be_nil
    end

    it "replays facts from elsewhere with their ids, times and causations (private replay, as in the reference)" do
      src = Igniter::Store::IgniterStore.new(backend: backend)
      f1 = src.write(store: :a, key: "k", value: 1)
      f2 = src.write(store: :a, key: "k", value: 2)
      copy = Igniter::Store::IgniterStore.new
      backend.facts.each { |f| copy.__send__(:replay, f) }
      expect(copy.history(store: :a, key: "k")).to eq([f1, f2])
      expect(copy.read(store: :a, key: "k")).to eq(2)
      expect(copy.__send__(:replay, f1)).to equal(copy.fact_by_id(f1.id)) # not taken twice
      expect(copy.fact_count).to eq(2)
      expect(copy.__send__(:replay, f2.to_h)).to eq(f2)
      expect(copy).not_to respond_to(:replay)
    end
  end

  it "reads a Fact like the 0.5.x Struct did" do
    f = store.write(store: :a, key: "k", value: 1)
    expect([f[:key], f["store"], f[0], f.members.first, f.to_a.size]).to eq(["k", :a, f.id, :id, 11])
    expect { f[:nope] }.to raise_error(NameError)
  end

  it "accepts the 0.5.x ttl: of read and query" do
    store.write(store: :a, key: "k", value: 1)
    expect(store.read(store: :a, key: "k", ttl: 5)).to eq(1)
    store.register_path(Igniter::Store::AccessPath.new(store: :a, scope: :one, filters: {}))
    q = store.query(store: :a, scope: :one, ttl: 60)
    expect(store.query(store: :a, scope: :one, ttl: 60)).to equal(q)
    expect([store.storage_stats, store.segment_manifest(store: :a)]).to eq([nil, nil])
  end

  it "drives a FileBackend on its own with the 0.5.x backend calls" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "b.wal")
      src = Igniter::Store::IgniterStore.new
      facts = [src.write(store: :a, key: "k", value: 1), src.write(store: :a, key: "k", value: 2)]
      b = Igniter::Store::FileBackend.new(path)
      facts.each { |f| b.write_fact(f) }
      b.write_snapshot(facts)
      b.close
      expect(File.exist?(b.snapshot_path)).to be(true)
      expect(Igniter::Store::FileBackend.new(path).replay).to eq(facts)
      Igniter::Store::IgniterStore.new(backend: Igniter::Store::FileBackend.new(path)).then do |s|
        expect(s.history(store: :a, key: "k")).to eq(facts)
        s.close
      end
    end
  end
end
