# frozen_string_literal: true

require_relative "spec_helper"

# The read fast path borrows store names: a static Symbol's name comes from the
# extension's cache of Symbol names, anything else from the object's own bytes. Every
# spelling of a name must find the same facts, and names that only differ in spelling
# or encoding must stay apart.
RSpec.describe "store and key names on the read fast path" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  it "finds a fact through a static Symbol, a dynamic Symbol and a String alike" do
    store.write(store: :hot_tasks, key: "k1", value: { n: 1 })
    dynamic = "hot_#{%w[tasks].first}".to_sym
    expect(store.read(store: :hot_tasks, key: "k1")).to eq({ n: 1 })
    expect(store.read(store: dynamic, key: "k1")).to eq({ n: 1 })
    expect(store.read(store: "hot_tasks", key: "k1")).to eq({ n: 1 })
    expect(store.read(store: :hot_tasks, key: :k1)).to eq({ n: 1 })
  end

  it "keeps stores and keys with different names apart on every path" do
    store.write(store: :hot_a, key: "k", value: 1)
    store.write(store: :hot_b, key: "k", value: 2)
    store.write(store: :hot_a, key: "k2", value: 3)
    expect(store.read(store: :hot_a, key: "k")).to eq(1)
    expect(store.read(store: :hot_b, key: "k")).to eq(2)
    expect(store.read(store: :hot_a, key: "k2")).to eq(3)
    expect(store.read(store: :hot_b, key: "k2")).to be_nil
    expect(store.read(store: :hot_c, key: "k")).to be_nil
  end

  it "refuses a Symbol name that is not valid UTF-8, as before" do
    bad = "\xff".dup.force_encoding("BINARY").to_sym
    expect { store.write(store: bad, key: "k", value: 1) }.to raise_error(ArgumentError)
  end

  it "answers many stores and keys through the keyed index maps" do
    200.times { |i| store.write(store: :"hot_s#{i % 7}", key: "k#{i}", value: i) }
    200.times do |i|
      expect(store.read(store: :"hot_s#{i % 7}", key: "k#{i}")).to eq(i)
      expect(store.read(store: :"hot_s#{(i + 1) % 7}", key: "k#{i}")).to be_nil
    end
  end
end
