# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"
require "pathname"

RSpec.describe "LedgerStore#verify and LedgerStore.verify_file" do
  around do |ex|
    Dir.mktmpdir("verify") do |dir|
      @dir = dir
      ex.run
    end
  end

  let(:path) { File.join(@dir, "app.wal") }

  it "verifies an open ledger while it is written, and a closed file by path" do
    store = Igniter::Ledger::LedgerStore.open(path)
    10.times { |i| store.write(store: :notes, key: "n#{i % 3}", value: { i: i }) }
    r = store.verify
    expect(r[:ok]).to be(true)
    expect(r[:facts_checked]).to eq(10)
    expect(r[:frames_checked]).to eq(10)
    expect(r[:problems]).to eq([])
    expect(r[:snapshot]).to eq({ status: :absent })
    expect { Igniter::Ledger::LedgerStore.verify_file(path) }.to raise_error(ArgumentError, /open in this process/)
    store.close
    f = Igniter::Ledger::LedgerStore.verify_file(Pathname(path))
    expect(f[:ok]).to be(true)
    expect(f[:facts_checked]).to eq(10)
  end

  it "reports a damaged middle frame as corruption and a broken causation link" do
    store = Igniter::Ledger::LedgerStore.open(path)
    6.times { |i| store.write(store: :notes, key: "n", value: { i: i }) }
    store.close
    bytes = File.binread(path)
    bytes.setbyte(bytes.bytesize / 2, bytes.getbyte(bytes.bytesize / 2) ^ 0x5a)
    File.binwrite(path, bytes)
    r = Igniter::Ledger::LedgerStore.verify_file(path)
    expect(r[:ok]).to be(false)
    expect(r[:corrupt].size).to eq(1)
    expect(r[:frames_checked]).to eq(5)
    expect(r[:broken_causation_count]).to eq(1)
    expect(r[:broken_causations].first[:store]).to eq(:notes)
    expect(r[:problems].join).to include("corrupt")
  end

  it "accepts tombstones and links to compacted facts" do
    store = Igniter::Ledger::LedgerStore.open(path)
    5.times { |i| store.write(store: :readings, key: "r", value: { v: i }) }
    store.write(store: :people, key: "ada", value: { name: "Ada" })
    store.set_retention(:readings, strategy: :ephemeral)
    store.compact
    store.erase(store: :people, key: "ada", reason: :gdpr)
    r = store.verify
    expect(r[:ok]).to be(true), r[:problems].inspect
    expect(r[:tombstones]).to eq(1)
    expect(r[:receipts]).to eq(2)
    expect(r[:causations_to_removed]).to eq(1)
    store.close
  end

  it "verifies an in-memory ledger's log" do
    store = Igniter::Ledger::LedgerStore.new
    store.write(store: :notes, key: "a", value: 1)
    r = store.verify
    expect(r[:ok]).to be(true)
    expect(r[:path]).to be_nil
    expect(r[:facts_checked]).to eq(1)
  end
end
