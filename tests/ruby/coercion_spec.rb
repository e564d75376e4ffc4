# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "coercions" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  before do
    store.write(store: :tasks, key: "old", value: { title: "Old", status: :open }, schema_version: 1)
    store.write(store: :tasks, key: "new", value: { name: "New", status: :open }, schema_version: 2)
    store.register_coercion(:tasks) do |value, schema_version|
      next value if schema_version >= 2

      # v1 stored :title; v2 renamed it to :name. The block gets a mutable copy.
      value.merge(name: value.delete(:title))
    end
  end

  it "transforms values on every read path and returns CoercedFact for changed ones" do
    expect(store.read(store: :tasks, key: "old")).to eq(status: :open, name: "Old")
    expect(store.read(store: :tasks, key: "new")).to eq(name: "New", status: :open)
    expect(store.time_travel(store: :tasks, key: "old", at: Time.now.to_f + 1)).to eq(status: :open, name: "Old")

    old = store.read_fact(store: :tasks, key: "old")
    expect(old).to be_a(Igniter::Ledger::CoercedFact)
    expect(old).to be_a(Igniter::Ledger::Fact)
    expect(old).to be_frozen
    expect(old.coerced?).to be(true)
    expect(old.value).to eq(status: :open, name: "Old")
    expect(deep_frozen?(old.value)).to be(true)
    expect(old.raw_value).to eq(title: "Old", status: :open)
    expect(old.fact).to be_an_instance_of(Igniter::Ledger::Fact)
    expect(old.fact.value).to eq(title: "Old", status: :open)
    expect(old.id).to eq(old.fact.id)
    expect(old.value_hash).to eq(old.fact.value_hash)
    expect(old.schema_version).to eq(1)
    expect(old).not_to eq(old.fact)

    fresh = store.read_fact(store: :tasks, key: "new")
    expect(fresh).to be_an_instance_of(Igniter::Ledger::Fact)

    expect(store.history(store: :tasks).map(&:class)).to eq([Igniter::Ledger::CoercedFact, Igniter::Ledger::Fact])
    store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, scope: :open, filters: { status: :open }))
    expect(store.query(store: :tasks, scope: :open).map(&:value)).to eq([{ name: "New", status: :open }, { status: :open, name: "Old" }])
  end

  it "never changes raw facts" do
    expect(store.fact_log_all.map(&:value)).to eq([{ title: "Old", status: :open }, { name: "New", status: :open }])
    expect(store.fact_by_id(store.read_fact(store: :tasks, key: "old").id).value).to eq(title: "Old", status: :open)
  end

  it "applies to partitions of the coerced store" do
    store.register_coercion(:ev) { |v, _| v.merge(seen: true) }
    store.append(history: :ev, event: { order: "o1" }, partition_key: :order)
    slice = store.history_partition(store: :ev, partition_key: :order, partition_value: "o1")
    expect(slice.map(&:value)).to eq([{ order: "o1", seen: true }])
  end

  it "replaces an earlier coercion and accepts any callable" do
    upcase = Object.new
    upcase.define_singleton_method(:call) { |v, _| v.merge(status: v[:status].to_s.upcase) }
    expect(store.register_coercion(:tasks, upcase)).to equal(store)
    expect(store.read(store: :tasks, key: "new")).to eq(name: "New", status: "OPEN")
    expect { store.register_coercion(:tasks) }.to raise_error(ArgumentError, /block/)
    expect { store.register_coercion(:tasks, 42) }.to raise_error(TypeError, /call/)
  end

  it "raises what a raising coercion raised to the reader, on every read path" do
    error_class = Class.new(StandardError)
    store.register_coercion(:tasks) { |_v, _s| raise error_class, "cannot migrate" }
    expect { store.read(store: :tasks, key: "old") }.to raise_error(error_class, "cannot migrate")
    expect { store.read_fact(store: :tasks, key: "old") }.to raise_error(error_class)
    expect { store.history(store: :tasks) }.to raise_error(error_class)
    store.register_path(Igniter::Ledger::AccessPath.new(store: :tasks, scope: :all))
    expect { store.query(store: :tasks, scope: :all) }.to raise_error(error_class)
    expect { store.history_partition(store: :tasks, partition_key: :status, partition_value: :open) }.to raise_error(error_class)
    # writes and raw reads are unaffected
    store.write(store: :tasks, key: "x", value: 1)
    expect(store.fact_count).to eq(3)
  end

  it "refuses an unsupported value returned by a coercion, naming the path" do
    store.register_coercion(:tasks) { |v, _| v.merge(at: Time.at(0)) }
    expect { store.read(store: :tasks, key: "new") }
      .to raise_error(TypeError, /coercion for store :tasks returned an unsupported value: coerced value\[:at\] is a Time/)
  end

  it "passes non-hash values and schema versions through" do
    seen = []
    store.register_coercion(:nums) { |v, sv| seen << [v, sv]; v * 10 }
    store.write(store: :nums, key: "n", value: 4, schema_version: 7)
    expect(store.read(store: :nums, key: "n")).to eq(40)
    expect(seen).to eq([[4, 7]])
  end
end
