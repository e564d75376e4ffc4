# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "bitemporal reads (valid_at:)" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  it "picks the fact with the greatest valid_time <= valid_at, among facts known as_of" do
    jan = store.write(store: :price, key: "sku", value: 10, valid_time: 100.0)
    mar = store.write(store: :price, key: "sku", value: 30, valid_time: 300.0)
    feb = store.write(store: :price, key: "sku", value: 20, valid_time: 200.0) # a late correction

    expect(store.read(store: :price, key: "sku", valid_at: 50)).to be_nil
    expect(store.read(store: :price, key: "sku", valid_at: 100)).to eq(10)
    expect(store.read(store: :price, key: "sku", valid_at: 250)).to eq(20)
    expect(store.read(store: :price, key: "sku", valid_at: 350)).to eq(30)
    expect(store.read(store: :price, key: "sku", valid_at: Time.at(250))).to eq(20)
    # before the correction was recorded, February still read as January
    expect(store.read(store: :price, key: "sku", valid_at: 250, as_of: mar.transaction_time)).to eq(10)
    expect(store.read_fact(store: :price, key: "sku", valid_at: 250)).to eq(feb)
    expect(store.read_fact(store: :price, key: "sku", valid_at: 120, as_of: jan.transaction_time)).to eq(jan)
    # the current read is still the latest transaction
    expect(store.read(store: :price, key: "sku")).to eq(20)
  end

  it "counts facts without a valid time from their transaction time; ties go to the later transaction" do
    a = store.write(store: :s, key: "k", value: :a)
    b = store.write(store: :s, key: "k", value: :b, valid_time: a.transaction_time)
    expect(store.read(store: :s, key: "k", valid_at: a.transaction_time)).to eq(:b)
    expect(store.read(store: :s, key: "k", valid_at: a.transaction_time - 1)).to be_nil
    expect(store.read(store: :s, key: "k", valid_at: b.transaction_time + 10)).to eq(:b)
  end

  it "keeps valid times through reopen and accepts term:" do
    Igniter::Ledger.open(wal_path) do |s|
      s.write(store: :s, key: "k", value: 1, term: 10)
      s.write(store: :s, key: "k", value: 2, valid_time: 20)
    end
    Igniter::Ledger.open(wal_path) do |s|
      expect(s.read(store: :s, key: "k", valid_at: 15)).to eq(1)
      expect(s.history(store: :s).map(&:term)).to eq([10.0, 20.0])
    end
  end

  it "refuses non-finite and non-numeric valid times" do
    expect { store.write(store: :s, key: "k", value: 1, valid_time: Float::INFINITY) }.to raise_error(ArgumentError, /valid_time/)
    expect { store.write(store: :s, key: "k", value: 1, valid_time: Float::NAN) }.to raise_error(ArgumentError, /valid_time/)
    expect { store.read(store: :s, key: "k", valid_at: "now") }.to raise_error(TypeError, /valid_at/)
    expect { store.read(store: :s, key: "k", as_of: :yesterday) }.to raise_error(TypeError, /as_of/)
    expect(store.fact_count).to eq(0)
  end
end
