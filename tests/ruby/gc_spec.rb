# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "garbage collection" do
  # Registers blocks and consumers that nothing but the store references.
  def register_callbacks(store, log)
    store.register_coercion(:items) { |v, sv| v.is_a?(Hash) ? v.merge(seen: sv, tag: "x" * 3) : v }
    store.register_path(Igniter::Ledger::AccessPath.new(store: :items, consumers: [->(s, k) { log << [s, k.dup] }]))
    store.register_path(Igniter::Ledger::AccessPath.new(store: :items, scope: :big, filters: { big: true },
                                                        consumers: [proc { |s, sc| log << [s, sc] }]))
    nil
  end

  def stress
    GC.stress = true
    yield
  ensure
    GC.stress = false
  end

  it "keeps coercion blocks and consumers held by the store alive under GC.stress" do
    log = []
    store = Igniter::Ledger::LedgerStore.new
    register_callbacks(store, log)
    GC.start
    reads = []
    stress do
      6.times do |i|
        store.write(store: :items, key: "k#{i % 3}", value: { n: i, big: i.odd?, list: ["a", { b: [i] }] })
        reads << store.read(store: :items, key: "k#{i % 3}")
        store.history(store: :items, key: "k0").each(&:value)
        store.query(store: :items, scope: :big).map(&:value)
      end
    end
    expect(reads.map { |r| r.values_at(:n, :seen, :tag) }).to eq(Array.new(6) { |i| [i, 1, "xxx"] })
    expect(log.count { |_, x| x.is_a?(String) }).to eq(6)
    expect(log.count { |_, x| x == :big }).to be > 0
  end

  it "keeps memoized fact values alive and valid across GC and compaction" do
    store = Igniter::Ledger::LedgerStore.new
    store.write(store: :s, key: "k", value: { text: "hello", list: [1, "two", :three] })
    fact = store.read_fact(store: :s, key: "k")
    value = fact.value
    value_id = value.object_id
    value = nil # only the fact holds it now
    stress { 5.times { Array.new(10) { "garbage" * 10 } } }
    begin
      GC.compact
    rescue NotImplementedError
      GC.start
    end
    expect(fact.value.object_id).to eq(value_id)
    expect(fact.value).to eq(text: "hello", list: [1, "two", :three])
  end

  it "keeps the Fact objects of cached partition slices alive across GC.stress and compaction" do
    store = Igniter::Ledger::LedgerStore.new
    5.times { |i| store.append(history: :h, event: { p: i % 2, text: "event #{i}" }, partition_key: :p) }
    ids = store.history_partition(store: :h, partition_key: :p, partition_value: 0).map(&:object_id)
    stress do
      3.times { Array.new(10) { "garbage" * 10 } }
      store.append(history: :h, event: { p: 0, text: "event 5" }, partition_key: :p)
      store.history_partition(store: :h, partition_key: :p, partition_value: 1)
    end
    begin
      GC.compact
    rescue NotImplementedError
      GC.start
    end
    slice = store.history_partition(store: :h, partition_key: :p, partition_value: 0)
    expect(slice.first(3).map(&:object_id)).to eq(ids)
    expect(slice.map { |f| f.value[:text] }).to eq(["event 0", "event 2", "event 4", "event 5"])
  end

  it "converts values and raises errors correctly under GC.stress" do
    store = Igniter::Ledger::LedgerStore.new
    v = { "s" => "é", sym: :"dyn#{rand(1000)}", bin: "\xFF".b, arr: [1.5, 2**40, nil, true], 1 => {} }
    read = error = slice = nil
    stress do
      store.write(store: :s, key: "k", value: v)
      read = store.read(store: :s, key: "k")
      begin
        store.write(store: :s, key: "k", value: { at: Time.now })
      rescue TypeError => e
        error = e
      end
      store.transaction { |tx| 3.times { |i| tx.append(history: :h, event: { i: i }, partition_key: :i) } }
      slice = store.history_partition(store: :h, partition_key: :i, partition_value: 1)
    end
    expect(read).to eq(v)
    expect(error.message).to start_with("value[:at] is a Time")
    expect(slice.map(&:value)).to eq([{ i: 1 }])
  end

  it "collects stores that are no longer referenced and releases their file lock" do
    path = wal_path
    # Opened on a thread that then ends, so no reference can stay on this thread's
    # (conservatively scanned) stack or registers.
    Thread.new { Igniter::Ledger.open(path, durability: :flush).write(store: :a, key: "k", value: 1); nil }.join
    reopened = nil
    20.times do
      GC.start(full_mark: true, immediate_sweep: true)
      reopened = Igniter::Ledger.open(path)
      break
    rescue Igniter::Ledger::LockedError
      nil # not collected yet: collect again
    end
    expect(reopened).not_to be_nil, "the unreferenced store was never collected: its lock is still held"
    expect(reopened.fact_count).to eq(1)
    reopened.close
  end
end
