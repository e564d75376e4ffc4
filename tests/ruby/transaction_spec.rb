# frozen_string_literal: true

require_relative "spec_helper"

# The native Transaction: each tx.write / tx.append converts its arguments when called,
# so a refused argument raises at that call (not when the block ends), and `expected:`
# distinguishes "not given" from nil.
RSpec.describe "LedgerStore#transaction" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  it "raises a refused argument at the tx call's line, before the rest of the block runs" do
    reached = false
    line = nil
    error = nil
    begin
      store.transaction do |tx|
        tx.write(store: :a, key: "k", value: 1)
        line = __LINE__ + 1
        tx.write(store: :a, key: "k2", value: Object.new)
        reached = true
      end
    rescue TypeError => e
      error = e
    end
    expect(error.message).to match(/\Abatch operation 2: value is an Object /)
    expect(error.backtrace.find { |l| l.start_with?("#{__FILE__}:") }).to start_with("#{__FILE__}:#{line}:")
    expect(reached).to be(false)
    expect(store.fact_count).to eq(0)
  end

  it "answers each operation's position, counts them, and commits them in order" do
    positions = nil
    facts = store.transaction do |tx|
      expect(tx).to be_empty
      positions = [tx.write(store: :a, key: "k", value: 1), tx.append(history: :h, event: { n: 1 }),
                   tx.write(store: :a, key: "k", value: 2)]
      expect(tx.size).to eq(3)
    end
    expect(positions).to eq([0, 1, 2])
    expect(facts.map(&:value)).to eq([1, { n: 1 }, 2])
    expect(store.read(store: :a, key: "k")).to eq(2)
  end

  it "checks expected: only when given (nil: the key must not exist)" do
    store.write(store: :a, key: "k", value: 0)
    expect { store.transaction { |tx| tx.write(store: :a, key: "k", value: 1, expected: nil) } }
      .to raise_error(Igniter::Ledger::ConflictError)
    expect(store.transaction { |tx| tx.write(store: :a, key: "k", value: 1) }.size).to eq(1)
    expect(store.transaction { |tx| tx.write(store: :a, key: "new", value: 1, expected: :none) }.size).to eq(1)
  end

  it "merges term: with valid_time: and refuses them disagreeing, naming the operation" do
    f = store.transaction { |tx| tx.write(store: :a, key: "k", value: 1, term: 5.0, valid_time: 5) }.first
    expect(f.valid_time).to eq(5.0)
    expect { store.transaction { |tx| tx.write(store: :a, key: "k", value: 1, term: 1, valid_time: 2) } }
      .to raise_error(ArgumentError, /\Abatch operation 1: valid_time: 2 and term: 1 disagree/)
  end

  it "writes nothing when the block leaves by break or throw, and cannot be made outside one" do
    store.transaction do |tx|
      tx.write(store: :a, key: "k", value: 1)
      break
    end
    catch(:out) { store.transaction { |tx| tx.write(store: :a, key: "k", value: 1) && throw(:out) } }
    expect(store.fact_count).to eq(0)
    expect { Igniter::Ledger::Transaction.new }.to raise_error(TypeError)
    expect { Igniter::Ledger::Transaction.allocate }.to raise_error(TypeError)
  end

  it "hands the committed facts to a backend: object, in order" do
    backend = Class.new do
      attr_reader :facts

      def initialize = @facts = []
      def write_fact(fact) = @facts << fact
    end.new
    s = Igniter::Ledger::LedgerStore.new(backend: backend)
    facts = s.transaction { |tx| 2.times { |i| tx.write(store: :a, key: "k#{i}", value: i) } }
    s.write(store: :a, key: "k9", value: 9)
    expect(backend.facts.first(2)).to eq(facts)
    expect(backend.facts.size).to eq(3)
  end
end
