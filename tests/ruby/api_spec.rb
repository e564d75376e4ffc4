# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "Igniter::Ledger API" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  describe "entry points and compatibility names" do
    it "builds in-memory stores through every entry point" do
      [Igniter::Ledger::LedgerStore.new, Igniter::Ledger.memory, Igniter::Ledger::LedgerStore.memory,
       Igniter::Store::IgniterStore.new, Igniter::Ledger::LedgerStore.new(lru_cap: 5_000)].each do |s|
        expect(s).to be_a(Igniter::Ledger::LedgerStore)
        expect(s.memory?).to be(true)
        expect(s.path).to be_nil
        expect(s.durability).to be_nil
        expect(s.open_report).to be_nil
      end
    end

    it "keeps the igniter-store names" do
      require "igniter-store"
      require "igniter/store"
      expect(Igniter::Store).to equal(Igniter::Ledger)
      expect(Igniter::Store::IgniterStore).to equal(Igniter::Ledger::LedgerStore)
      expect(Igniter::Store::Fact).to equal(Igniter::Ledger::Fact)
    end

    it "opens file-backed stores through open, Igniter::Ledger.open and a FileBackend" do
      a = Igniter::Ledger::LedgerStore.open(wal_path("a.wal"))
      b = Igniter::Ledger.open(wal_path("b.wal"), durability: :flush)
      c = Igniter::Ledger::LedgerStore.new(backend: Igniter::Ledger::FileBackend.new(wal_path("c.wal"), durability: :none))
      expect([a, b, c].map(&:durability)).to eq(%i[fsync flush none])
      expect(c.path).to eq(wal_path("c.wal"))
      [a, b, c].each(&:close)
      expect(Igniter::Ledger::FileBackend::SNAPSHOT_SUFFIX).to eq(".snap")
      expect(Igniter::Ledger::FileBackend.new("x.wal").snapshot_path).to eq("x.wal.snap")
    end

    it "closes a store opened with a block" do
      kept = nil
      Igniter::Ledger.open(wal_path) do |s|
        kept = s
        s.write(store: :a, key: "k", value: 1)
      end
      expect(kept.closed?).to be(true)
    end

    it "rejects unknown backends and durabilities" do
      expect { Igniter::Ledger::LedgerStore.new(backend: :sqlite) }.to raise_error(ArgumentError, /backend/)
      expect { Igniter::Ledger.open(wal_path, durability: :sometimes) }.to raise_error(ArgumentError, /durability/)
      expect { Igniter::Ledger::LedgerStore.new(durability: :flush) }.to raise_error(ArgumentError)
      expect { Igniter::Ledger.open(42) }.to raise_error(TypeError)
    end

    it "exposes real keyword parameters" do
      params = Igniter::Ledger::LedgerStore.instance_method(:write).parameters
      expect(params).to include([:keyreq, :store], [:keyreq, :key], [:keyreq, :value],
                                [:key, :schema_version], [:key, :causation], [:key, :valid_time],
                                [:key, :term], [:key, :producer], [:key, :derivation], [:key, :expected])
      expect { store.write(store: :a, key: "k") }.to raise_error(ArgumentError, /value/)
      expect { store.read(store: :a) }.to raise_error(ArgumentError, /key/)
      expect { store.write(store: :a, key: "k", value: 1, colour: :red) }.to raise_error(ArgumentError, /colour/)
    end

    it "cannot allocate stores or facts without the constructors" do
      expect { Igniter::Ledger::LedgerStore.allocate }.to raise_error(TypeError)
      expect { Igniter::Ledger::Fact.allocate }.to raise_error(TypeError)
    end
  end

  describe "#write and Fact" do
    it "returns a frozen fact with every field" do
      f = store.write(store: :reminders, key: "r1", value: { title: "Buy milk", status: :open },
                      schema_version: 3, valid_time: 1_700_000_000.25, producer: { app: "spec" },
                      derivation: [:manual])
      expect(f).to be_a(Igniter::Ledger::Fact)
      expect(f).to be_frozen
      expect(f.id).to match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/)
      expect(f.store).to eq(:reminders)
      expect(f.key).to eq("r1")
      expect(f.value).to eq(title: "Buy milk", status: :open)
      expect(f.value_hash).to match(/\A\h{64}\z/)
      expect(f.causation).to be_nil
      expect(f.transaction_time).to be_a(Float)
      expect(f.transaction_time).to be_within(60).of(Time.now.to_f)
      expect(f.timestamp).to eq(f.transaction_time)
      expect(f.valid_time).to eq(1_700_000_000.25)
      expect(f.term).to eq(f.valid_time)
      expect(f.schema_version).to eq(3)
      expect(f.producer).to eq(app: "spec")
      expect(f.derivation).to eq([:manual])
      expect(f.coerced?).to be(false)
      expect(f.to_h.keys).to eq(%i[id store key value value_hash causation transaction_time valid_time
                                   schema_version producer derivation])
      expect(f.to_h[:value]).to eq(f.value)
      expect(f.inspect).to include("store=:reminders", 'key="r1"')
      expect(deep_frozen?(f.value)).to be(true)
      expect(f.value).to equal(f.value) # converted once, then kept
    end

    it "links causation to the previous fact of the key unless given" do
      f1 = store.write(store: :t, key: "k", value: 1)
      f2 = store.write(store: :t, key: "k", value: 2)
      other = store.write(store: :t, key: "other", value: 0)
      f3 = store.write(store: :t, key: "k", value: 3, causation: other.id)
      f4 = store.write(store: :t, key: "k", value: 4, causation: f1)
      expect(f2.causation).to eq(f1.id)
      expect(f3.causation).to eq(other.id)
      expect(f4.causation).to eq(f1.id)
      expect { store.write(store: :t, key: "k", value: 5, causation: "not-an-id") }
        .to raise_error(ArgumentError, /causation/)
    end

    it "gives strictly increasing transaction times and ids" do
      facts = Array.new(200) { |i| store.write(store: :t, key: "k#{i % 3}", value: i) }
      times = facts.map(&:transaction_time)
      expect(times.each_cons(2).all? { |a, b| b > a }).to be(true)
      expect(facts.map(&:id)).to eq(facts.map(&:id).sort)
    end

    it "hashes values canonically: same value, same hash, whatever the key order" do
      a = store.write(store: :t, key: "a", value: { x: 1, y: [1, 2] })
      b = store.write(store: :t, key: "b", value: { y: [1, 2], x: 1 })
      c = store.write(store: :t, key: "c", value: { "x" => 1, y: [1, 2] })
      expect(a.value_hash).to eq(b.value_hash)
      expect(a.value_hash).not_to eq(c.value_hash)
    end

    it "treats Symbol and String store names and keys alike" do
      store.write(store: "notes", key: :n1, value: "hi")
      expect(store.read(store: :notes, key: "n1")).to eq("hi")
      expect(store.history(store: "notes").first.store).to eq(:notes)
      expect { store.write(store: 1, key: "k", value: 1) }.to raise_error(TypeError, /store/)
      expect { store.write(store: :a, key: nil, value: 1) }.to raise_error(TypeError, /key/)
      expect { store.write(store: "", key: "k", value: 1) }.to raise_error(ArgumentError, /store/)
    end

    it "accepts term: as valid_time: and refuses disagreement" do
      expect(store.write(store: :t, key: "k", value: 1, term: 5.0).valid_time).to eq(5.0)
      expect(store.write(store: :t, key: "k", value: 1, valid_time: 6, term: 6).valid_time).to eq(6.0)
      expect { store.write(store: :t, key: "k", value: 1, valid_time: 1, term: 2) }.to raise_error(ArgumentError, /term/)
      expect { store.write(store: :t, key: "k", value: 1, valid_time: "soon") }.to raise_error(TypeError, /valid_time/)
      expect(store.write(store: :t, key: "k", value: 1, valid_time: Time.at(7.5)).valid_time).to eq(7.5)
    end

    it "validates schema_version" do
      expect { store.write(store: :t, key: "k", value: 1, schema_version: -1) }.to raise_error(RangeError)
      expect { store.write(store: :t, key: "k", value: 1, schema_version: "2") }.to raise_error(TypeError)
      expect(store.fact_count).to eq(0)
    end
  end

  describe "Fact.build and equality" do
    it "builds standalone facts" do
      f = Igniter::Ledger::Fact.build(store: :s, key: "k", value: { a: 1 }, schema_version: 2, term: 3.0)
      expect(f.store).to eq(:s)
      expect(f.value).to eq(a: 1)
      expect(f.schema_version).to eq(2)
      expect(f.valid_time).to eq(3.0)
      expect(f).to be_frozen
      expect { Igniter::Ledger::Fact.build(store: :s, key: "k", value: Object.new) }.to raise_error(TypeError, /value is a Object/)
    end

    it "compares facts by identity and content" do
      f = store.write(store: :s, key: "k", value: 1)
      again = store.fact_by_id(f.id)
      expect(again).to eq(f)
      expect(again).to eql(f)
      expect(again.hash).to eq(f.hash)
      expect({ f => 1 }[again]).to eq(1)
      expect(store.write(store: :s, key: "k", value: 1)).not_to eq(f)
      expect(f).not_to eq(f.to_h)
      expect(f.raw_fact).to equal(f)
    end

    it "supports pattern matching" do
      f = store.write(store: :s, key: "k", value: { status: :open })
      case f
      in { store: :s, value: { status: } }
        expect(status).to eq(:open)
      end
    end
  end

  describe "#append" do
    it "appends events under fresh UUID keys with no default causation" do
      a = store.append(history: :events, event: { order_id: "o1", kind: :created })
      b = store.append(history: :events, event: { order_id: "o1", kind: :paid }, partition_key: :order_id,
                       schema_version: 2, causation: a.id, valid_time: 10, producer: :pos, derivation: { from: a.id })
      expect(a.key).to match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/)
      expect(a.key).not_to eq(b.key)
      expect(a.causation).to be_nil
      expect(b.causation).to eq(a.id)
      expect(b.schema_version).to eq(2)
      expect(b.valid_time).to eq(10.0)
      expect(b.producer).to eq(:pos)
      expect(b.derivation).to eq(from: a.id)
      expect(store.history(store: :events).map(&:id)).to eq([a.id, b.id])
      expect { store.append(history: :events, event: Time.now) }.to raise_error(TypeError, /\Aevent is a Time/)
    end
  end

  describe "#read, #time_travel, #history" do
    it "reads current and past values" do
      f1 = store.write(store: :r, key: "r1", value: { status: :open })
      f2 = store.write(store: :r, key: "r1", value: { status: :done })
      expect(store.read(store: :r, key: "r1")).to eq(status: :done)
      expect(store.read(store: :r, key: "r1", as_of: f1.transaction_time)).to eq(status: :open)
      expect(store.read(store: :r, key: "r1", as_of: f2.transaction_time)).to eq(status: :done)
      expect(store.read(store: :r, key: "r1", as_of: f1.transaction_time - 1)).to be_nil
      expect(store.time_travel(store: :r, key: "r1", at: f1.transaction_time)).to eq(status: :open)
      expect(store.time_travel(store: :r, key: "r1", at: Time.at(f1.transaction_time))).to eq(status: :open)
      expect(store.read(store: :r, key: "missing")).to be_nil
      expect(store.read(store: :missing, key: "r1")).to be_nil
      expect(store.read_fact(store: :r, key: "r1")).to eq(f2)
      expect(store.read_fact(store: :r, key: "r1", as_of: f1.transaction_time)).to eq(f1)
      expect(deep_frozen?(store.read(store: :r, key: "r1"))).to be(true)
    end

    it "lists history in commit order with inclusive since/as_of bounds" do
      facts = Array.new(6) { |i| store.write(store: :h, key: "k#{i % 2}", value: i) }
      store.write(store: :other, key: "k0", value: :x)
      expect(store.history(store: :h).map(&:value)).to eq([0, 1, 2, 3, 4, 5])
      expect(store.history(store: :h, key: "k1").map(&:value)).to eq([1, 3, 5])
      expect(store.history(store: :h, since: facts[2].transaction_time).map(&:value)).to eq([2, 3, 4, 5])
      expect(store.history(store: :h, as_of: facts[2].transaction_time).map(&:value)).to eq([0, 1, 2])
      expect(store.history(store: :h, key: "k0", since: facts[2].transaction_time,
                           as_of: facts[4].transaction_time).map(&:value)).to eq([2, 4])
      expect(store.history(store: :nothing)).to eq([])
      expect(store.history(store: :h)).to all(be_frozen)
    end
  end

  describe "#history_partition" do
    it "answers slices whether or not appends named the partition key" do
      store.append(history: :ev, event: { order: "o1", n: 1 })
      store.append(history: :ev, event: { order: "o2", n: 2 }, partition_key: :order)
      first = store.history_partition(store: :ev, partition_key: :order, partition_value: "o1")
      store.append(history: :ev, event: { order: "o1", n: 3 })
      store.append(history: :ev, event: { order: :o1, n: 4 }, partition_key: :order)
      store.append(history: :ev, event: { "order" => "o1", n: 5 })
      expect(first.map { |f| f.value[:n] }).to eq([1])
      expect(store.history_partition(store: :ev, partition_key: :order, partition_value: "o1").map { |f| f.value[:n] }).to eq([1, 3])
      expect(store.history_partition(store: :ev, partition_key: :order, partition_value: :o1).map { |f| f.value[:n] }).to eq([4])
      expect(store.history_partition(store: :ev, partition_key: "order", partition_value: "o1").map { |f| f.value[:n] }).to eq([5])
      expect(store.history_partition(store: :ev, partition_key: :order, partition_value: "none")).to eq([])
    end

    it "applies since/as_of to a slice" do
      facts = Array.new(10) { |i| store.append(history: :ev, event: { p: i % 2, i: i }, partition_key: :p) }
      slice = store.history_partition(store: :ev, partition_key: :p, partition_value: 0,
                                      since: facts[2].transaction_time, as_of: facts[6].transaction_time)
      expect(slice.map { |f| f.value[:i] }).to eq([2, 4, 6])
      expect { store.history_partition(store: :ev, partition_key: 1.5, partition_value: 0) }
        .to raise_error(TypeError, /partition_key is a Float/)
    end
  end

  describe "closed stores" do
    it "refuses writes and keeps answering reads" do
      s = Igniter::Ledger.open(wal_path)
      s.write(store: :a, key: "k", value: 1)
      s.close
      s.close
      expect(s.closed?).to be(true)
      expect { s.write(store: :a, key: "k", value: 2) }.to raise_error(Igniter::Ledger::ClosedError)
      expect { s.checkpoint }.to raise_error(Igniter::Ledger::ClosedError)
      expect(s.read(store: :a, key: "k")).to eq(1)
      expect(Igniter::Ledger::ClosedError.ancestors).to include(Igniter::Ledger::Error, StandardError)
    end
  end
end

RSpec.describe "the read cache" do
  it "hands out the same frozen value for repeated reads of a fact, and a new one after a write" do
    store = Igniter::Ledger::LedgerStore.new
    store.write(store: :s, key: "k", value: { a: [1, "x"] })
    first = store.read(store: :s, key: "k")
    expect(store.read(store: :s, key: "k")).to equal(first)
    store.write(store: :s, key: "k", value: { a: [2] })
    expect(store.read(store: :s, key: "k")).to eq(a: [2])
    expect(store.read(store: :s, key: "k", as_of: store.history(store: :s).first.transaction_time)).to equal(first)
  end

  it "can be turned off or bounded (read_cache:, or the 0.5.x lru_cap:)" do
    off = Igniter::Ledger::LedgerStore.new(read_cache: 0)
    off.write(store: :s, key: "k", value: { a: 1 })
    expect(off.read(store: :s, key: "k")).not_to equal(off.read(store: :s, key: "k"))
    small = Igniter::Ledger::LedgerStore.new(lru_cap: 2)
    3.times { |i| small.write(store: :s, key: "k#{i}", value: [i]) }
    v0 = small.read(store: :s, key: "k0")
    small.read(store: :s, key: "k1")
    small.read(store: :s, key: "k2") # evicts k0
    expect(small.read(store: :s, key: "k0")).to eq(v0)
    expect(small.read(store: :s, key: "k0")).not_to equal(v0)
    expect { Igniter::Ledger::LedgerStore.new(read_cache: -1) }.to raise_error(ArgumentError, /read_cache/)
    Igniter::Ledger.open(wal_path, read_cache: 0) { |s| expect(s.fact_count).to eq(0) }
  end

  it "keeps cached values alive and intact across GC and compaction" do
    store = Igniter::Ledger::LedgerStore.new
    store.write(store: :s, key: "k", value: { text: "hello", list: [1, "two", :three] })
    id = store.read(store: :s, key: "k").object_id
    5.times { Array.new(1000) { "garbage" * 5 } }
    begin
      GC.compact
    rescue NotImplementedError
      GC.start
    end
    again = store.read(store: :s, key: "k")
    expect(again.object_id).to eq(id)
    expect(again).to eq(text: "hello", list: [1, "two", :three])
  end

  it "does not serve coerced values from the cache" do
    store = Igniter::Ledger::LedgerStore.new
    store.write(store: :s, key: "k", value: 1)
    expect(store.read(store: :s, key: "k")).to eq(1)
    store.register_coercion(:s) { |v, _| v + 1 }
    expect(store.read(store: :s, key: "k")).to eq(2)
  end
end
