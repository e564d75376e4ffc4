# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "access paths, scope queries and consumers" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  def task(status, extra = {})
    { title: "t", status: status }.merge(extra)
  end

  describe "AccessPath" do
    it "is a frozen value object" do
      c = ->(*) {}
      path = Igniter::Ledger.access_path(store: "tasks", scope: "open", filters: { status: :open },
                                         lookup: :primary_key, cache_ttl: 30, consumers: [c])
      expect(path).to be_frozen
      expect(path).to be_a(Igniter::Ledger::AccessPath)
      expect(path.store).to eq(:tasks)
      expect(path.scope).to eq(:open)
      expect(path.scope?).to be(true)
      expect(path.filters).to eq(status: :open)
      expect(path.lookup).to eq(:primary_key)
      expect(path.cache_ttl).to eq(30)
      expect(path.consumers).to eq([c])
      expect(path).to eq(Igniter::Ledger::AccessPath.new(**path.to_h))
      expect(Igniter::Ledger::AccessPath.new(store: :tasks).scope?).to be(false)
      # Any objects as metadata (a standalone SchemaGraph); callables to be registered.
      expect(Igniter::Ledger::AccessPath.new(store: :t, consumers: Set[:a]).consumers).to eq([:a])
      expect { store.register_path(Igniter::Ledger::AccessPath.new(store: :t, consumers: [:nope])) }
        .to raise_error(TypeError, /call/)
      expect(store.schema_graph.paths_for(:t)).to eq([])
      expect { Igniter::Ledger::AccessPath.new(store: :t, filters: [1]) }.to raise_error(TypeError, /filters/)
    end
  end

  describe "#query" do
    before do
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, scope: :open, filters: { status: :open }))
    end

    it "answers the latest fact of every matching key, ordered by key" do
      store.write(store: :tasks, key: "b", value: task(:open))
      store.write(store: :tasks, key: "a", value: task(:open))
      store.write(store: :tasks, key: "c", value: task(:done))
      store.write(store: :other, key: "z", value: task(:open))
      expect(store.query(store: :tasks, scope: :open).map(&:key)).to eq(%w[a b])
      store.write(store: :tasks, key: "b", value: task(:done))
      store.write(store: :tasks, key: "c", value: task(:open))
      result = store.query(store: :tasks, scope: :open)
      expect(result.map(&:key)).to eq(%w[a c])
      expect(result).to all(be_a(Igniter::Ledger::Fact))
    end

    it "includes keys written before the path was registered and matches types exactly" do
      store.write(store: :tasks2, key: "1", value: task(:open))
      store.write(store: :tasks2, key: "2", value: task("open"))
      store.write(store: :tasks2, key: "3", value: { "status" => :open })
      store.write(store: :tasks2, key: "4", value: [:open])
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks2, scope: :open, filters: { status: :open }))
      expect(store.query(store: :tasks2, scope: :open).map(&:key)).to eq(["1"])
    end

    it "answers the past with as_of" do
      f1 = store.write(store: :tasks, key: "a", value: task(:open))
      store.write(store: :tasks, key: "a", value: task(:done))
      store.write(store: :tasks, key: "b", value: task(:open))
      expect(store.query(store: :tasks, scope: :open, as_of: f1.transaction_time).map(&:key)).to eq(["a"])
      expect(store.query(store: :tasks, scope: :open).map(&:key)).to eq(["b"])
    end

    it "supports several filters and empty filters" do
      store.register_path(Igniter::Ledger.access_path(store: :tasks, scope: :urgent_open,
                                                      filters: { status: :open, urgent: true }))
      store.register_path(Igniter::Ledger.access_path(store: :tasks, scope: :all))
      store.write(store: :tasks, key: "a", value: task(:open, urgent: true))
      store.write(store: :tasks, key: "b", value: task(:open, urgent: false))
      store.write(store: :tasks, key: "c", value: "not even a hash")
      expect(store.query(store: :tasks, scope: :urgent_open).map(&:key)).to eq(["a"])
      expect(store.query(store: :tasks, scope: :all).map(&:key)).to eq(%w[a b c])
    end

    it "raises UnknownScopeError, an ArgumentError, for an unregistered scope" do
      expect { store.query(store: :tasks, scope: :closed) }.to raise_error(ArgumentError, /closed/) { |e|
        expect(e).to be_a(Igniter::Ledger::UnknownScopeError)
        expect(e.scope).to eq(:closed)
        expect(e.store).to eq(:tasks)
      }
    end
  end

  describe "consumers" do
    it "calls point consumers with (store, key) after every write to the store" do
      calls = []
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, consumers: [->(s, k) { calls << [s, k] }]))
      store.write(store: :tasks, key: "a", value: 1)
      store.write(store: :tasks, key: "a", value: 2)
      store.write(store: :other, key: "x", value: 1)
      store.transaction { |tx| tx.write(store: :tasks, key: "b", value: 1) }
      expect(calls).to eq([[:tasks, "a"], [:tasks, "a"], [:tasks, "b"]])
      expect(calls.flatten.grep(String)).to all(be_frozen)
    end

    it "calls scope consumers with (store, scope) only when membership changes, once the scope is warm" do
      calls = []
      consumer = Object.new
      consumer.define_singleton_method(:call) { |s, scope| calls << [s, scope] }
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, scope: :open, filters: { status: :open },
                                                          consumers: [consumer]))
      store.write(store: :tasks, key: "c", value: task(:open))             # cold (never queried): silent
      expect(calls).to be_empty
      expect(store.query(store: :tasks, scope: :open).map(&:key)).to eq(["c"]) # warms the scope
      store.write(store: :tasks, key: "a", value: task(:open))             # enters
      store.write(store: :tasks, key: "a", value: task(:open, n: 2))       # stays: silent
      store.write(store: :tasks, key: "b", value: task(:done))             # never in: silent
      store.write(store: :tasks, key: "a", value: task(:done))             # leaves
      store.write(store: :tasks, key: "b", value: task(:done, n: 3))       # still out: silent
      expect(calls).to eq([%i[tasks open], %i[tasks open]])
    end

    it "never lets a raising consumer break the write" do
      seen = []
      store.register_path(Igniter::Ledger::AccessPath.new(
                            store: :tasks, consumers: [->(*) { raise "boom" }, ->(_s, k) { seen << k }]
                          ))
      f = nil
      expect { f = store.write(store: :tasks, key: "a", value: 1) }.not_to raise_error
      expect(f.value).to eq(1)
      expect(store.read(store: :tasks, key: "a")).to eq(1)
      expect(seen).to eq(["a"])
      expect(store.consumer_failures).to eq(1)
      store.append(history: :tasks, event: 2)
      expect(store.consumer_failures).to eq(2)
    end

    it "re-raises a non-StandardError exception after the write has committed" do
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, consumers: [->(*) { raise Interrupt }]))
      expect { store.write(store: :tasks, key: "a", value: 1) }.to raise_error(Interrupt)
      expect(store.read(store: :tasks, key: "a")).to eq(1)
    end

    it "lets consumers read the store" do
      reads = []
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, consumers: [->(s, k) { reads << store.read(store: s, key: k) }]))
      store.write(store: :tasks, key: "a", value: { v: 1 })
      expect(reads).to eq([{ v: 1 }])
    end

    it "notifies from fsync-mode file stores (delivered after the disk wait)" do
      calls = []
      Igniter::Ledger.open(wal_path) do |s|
        s.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, consumers: [->(st, k) { calls << [st, k, Thread.current] }]))
        s.write(store: :tasks, key: "a", value: 1)
      end
      expect(calls).to eq([[:tasks, "a", Thread.current]])
    end

    it "checks consumers are callable" do
      expect { store.register_path(:nope) }.to raise_error(TypeError, /AccessPath/)
    end
  end

  describe "#schema_graph" do
    it "lists registered paths, partition indexes, coercions and stores" do
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, scope: :open, filters: { status: :open },
                                                          lookup: :scan, cache_ttl: 5, consumers: [->(*) {}]))
      store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks))
      store.register_coercion(:tasks) { |v, _| v }
      store.write(store: :tasks, key: "a", value: task(:open))
      store.append(history: :ev, event: { order: 1 }, partition_key: :order)
      g = store.schema_graph
      expect(g[:paths]).to contain_exactly(
        { store: :tasks, scope: :open, filters: { status: :open }, lookup: :scan, cache_ttl: 5.0, consumers: 1 },
        { store: :tasks, scope: nil, filters: {}, lookup: nil, cache_ttl: nil, consumers: 0 }
      )
      expect(g[:partitions]).to eq([{ store: :ev, partition_key: :order }])
      expect(g[:coercions]).to eq([:tasks])
      expect(g[:stores]).to contain_exactly(:tasks, :ev)
    end
  end
end
