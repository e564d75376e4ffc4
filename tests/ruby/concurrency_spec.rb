# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/gvl_ticks"

RSpec.describe "optimistic concurrency, atomic batches and threads" do
  let(:store) { Igniter::Ledger::LedgerStore.new }

  describe "write(expected:)" do
    it "writes only when the latest fact is the expected one" do
      first = store.write(store: :acct, key: "a", value: 100, expected: nil)
      expect { store.write(store: :acct, key: "a", value: 1, expected: nil) }
        .to raise_error(Igniter::Ledger::ConflictError) { |e|
          expect(e.store).to eq(:acct)
          expect(e.key).to eq("a")
          expect(e.expected).to be_nil
          expect(e.actual).to eq(first.id)
          expect(e.message).to include("acct/a", first.id)
        }
      expect { store.write(store: :acct, key: "a", value: 1, expected: :none) }.to raise_error(Igniter::Ledger::ConflictError)
      second = store.write(store: :acct, key: "a", value: 90, expected: first.id)
      expect { store.write(store: :acct, key: "a", value: 80, expected: first) }
        .to raise_error(Igniter::Ledger::ConflictError) { |e| expect([e.expected, e.actual]).to eq([first.id, second.id]) }
      third = store.write(store: :acct, key: "a", value: 80, expected: second)
      expect(store.history(store: :acct, key: "a").map(&:value)).to eq([100, 90, 80])
      expect(third.causation).to eq(second.id)
      expect(Igniter::Ledger::ConflictError.ancestors).to include(Igniter::Ledger::Error)
    end

    it "refuses malformed expectations" do
      expect { store.write(store: :a, key: "k", value: 1, expected: :maybe) }.to raise_error(ArgumentError, /expected/)
      expect { store.write(store: :a, key: "k", value: 1, expected: "x") }.to raise_error(ArgumentError, /fact id/)
      expect { store.write(store: :a, key: "k", value: 1, expected: 5) }.to raise_error(TypeError)
      expect(store.fact_count).to eq(0)
    end

    it "lets exactly one of several racing writers win" do
      base = store.write(store: :c, key: "k", value: 0)
      results = Array.new(8) do |i|
        Thread.new do
          store.write(store: :c, key: "k", value: i + 1, expected: base.id)
          :won
        rescue Igniter::Ledger::ConflictError
          :lost
        end
      end.map(&:value)
      expect(results.count(:won)).to eq(1)
      expect(store.history(store: :c, key: "k").size).to eq(2)
    end
  end

  describe "atomic batches" do
    it "commits a transaction's writes and appends together and returns their facts" do
      positions = []
      facts = store.transaction do |tx|
        positions << tx.write(store: :stock, key: "sku", value: 4, expected: nil)
        positions << tx.append(history: :moves, event: { sku: "sku", delta: -1 }, partition_key: :sku)
        positions << tx.write(store: :stock, key: "sku", value: 3)
      end
      expect(positions).to eq([0, 1, 2])
      expect(facts.map(&:store)).to eq(%i[stock moves stock])
      expect(facts[2].causation).to eq(facts[0].id)
      expect(store.read(store: :stock, key: "sku")).to eq(3)
      expect(facts.map(&:transaction_time).each_cons(2).all? { |a, b| b > a }).to be(true)
    end

    it "writes nothing when the block raises or an expectation fails" do
      store.write(store: :stock, key: "sku", value: 1)
      expect do
        store.transaction do |tx|
          tx.write(store: :stock, key: "sku", value: 2)
          raise "changed my mind"
        end
      end.to raise_error(RuntimeError, "changed my mind")
      expect do
        store.transaction do |tx|
          tx.write(store: :stock, key: "other", value: 2)
          tx.write(store: :stock, key: "sku", value: 2, expected: nil)
        end
      end.to raise_error(Igniter::Ledger::ConflictError)
      expect(store.fact_count).to eq(1)
      expect(store.transaction { |_tx| nil }).to eq([])
    end

    it "lets expectations see earlier operations of the same batch" do
      facts = store.transaction do |tx|
        tx.write(store: :s, key: "k", value: 1, expected: :none)
      end
      store.transaction do |tx|
        tx.write(store: :s, key: "k", value: 2, expected: facts[0].id)
        tx.write(store: :s, key: "fresh", value: 1, expected: nil)
      end
      expect do
        store.transaction do |tx|
          tx.write(store: :s, key: "new", value: 1, expected: nil)
          tx.write(store: :s, key: "new", value: 2, expected: nil)
        end
      end.to raise_error(Igniter::Ledger::ConflictError)
      expect(store.read(store: :s, key: "new")).to be_nil
    end

    it "accepts write_batch with hashes" do
      facts = store.write_batch([
                                  { store: :a, key: "k", value: 1 },
                                  { history: :h, event: { x: 1 }, partition_key: :x }
                                ])
      expect(facts.map(&:store)).to eq(%i[a h])
      expect { store.write_batch([{ store: :a, key: "k", value: 2 }, :nope]) }.to raise_error(TypeError)
      expect(store.fact_count).to eq(2)
    end

    it "survives reopen as a unit, and a torn batch frame vanishes as a unit" do
      Igniter::Ledger.open(wal_path) do |s|
        s.transaction do |tx|
          50.times { |i| tx.write(store: :b, key: "k#{i}", value: i) }
        end
      end
      Igniter::Ledger.open(wal_path) { |s| expect(s.fact_count).to eq(50) }
      Igniter::Ledger.open(wal_path) do |s|
        s.transaction { |tx| 50.times { |i| tx.write(store: :b, key: "k#{i}", value: -i) } }
      end
      File.truncate(wal_path, File.size(wal_path) - 3) # tear the second batch's frame
      Igniter::Ledger.open(wal_path) do |s|
        expect(s.fact_count).to eq(50)
        expect(s.read(store: :b, key: "k7")).to eq(7)
        expect(s.open_report[:torn_tail]).not_to be_nil
      end
    end
  end

  describe "threads" do
    def hammer(store, threads:, writes:)
      readers_done = false
      reader = Thread.new do
        reads = 0
        until readers_done
          store.read(store: :t, key: "w0-k0")
          store.history(store: :t, key: "w1-k1")
          reads += 1
          Thread.pass
        end
        reads
      end
      writers = Array.new(threads) do |w|
        Thread.new do
          Array.new(writes) { |i| store.write(store: :t, key: "w#{w}-k#{i % 3}", value: { w: w, i: i }) }
        end
      end
      facts = writers.flat_map(&:value)
      readers_done = true
      reader.value
      facts
    end

    def check(store, facts, threads:, writes:)
      expect(store.fact_count).to eq(threads * writes)
      expect(facts.map(&:id).uniq.size).to eq(threads * writes)
      times = store.fact_log_all.map(&:transaction_time)
      expect(times.each_cons(2).all? { |a, b| b > a }).to be(true)
      threads.times do |w|
        3.times do |k|
          hist = store.history(store: :t, key: "w#{w}-k#{k}")
          expect(hist.first.causation).to be_nil
          hist.each_cons(2) { |a, b| expect(b.causation).to eq(a.id) }
          expect(hist.map { |f| f.value[:i] }).to eq(hist.map { |f| f.value[:i] }.sort)
        end
      end
    end

    it "serves several writer and reader threads on an in-memory store" do
      facts = hammer(store, threads: 4, writes: 300)
      check(store, facts, threads: 4, writes: 300)
    end

    it "serves several writer threads on an fsync-mode file store (group commit)" do
      Igniter::Ledger.open(wal_path) do |s|
        facts = hammer(s, threads: 4, writes: 25)
        check(s, facts, threads: 4, writes: 25)
      end
      Igniter::Ledger.open(wal_path) { |s| expect(s.fact_count).to eq(100) }
    end

    it "serves several writer threads on a flush-mode file store" do
      Igniter::Ledger.open(wal_path, durability: :flush) do |s|
        facts = hammer(s, threads: 3, writes: 200)
        check(s, facts, threads: 3, writes: 200)
      end
    end

    it "keeps other Ruby threads running while one commits in fsync mode" do
      # Each write's fdatasync must run without the GVL: another Ruby thread keeps
      # ticking *during* the write calls. A tick is counted only when it falls strictly
      # inside a write call's interval, so a binding that held the GVL across the fsync
      # (the ticker could then run only between calls) fails this.
      dir = Dir.mktmpdir("igniter-ledger-gvl", "/var/tmp") # a real disk: fsync takes time
      begin
        Igniter::Ledger.open(File.join(dir, "gvl.wal")) do |s|
          inside = GVLTicks.inside_writes(limit: 40) { |i| s.write(store: :t, key: "k", value: i) }
          # With the GVL held across the fsync the ticker runs only when Ruby switches
          # threads between calls, and then ticks once before its Thread.pass hands the
          # GVL back: at most a tick or two per write (measured: 1 in 20 writes). With the
          # GVL released it ticks for as long as the fsync takes: thousands per slow write.
          # A fast fsync can still end before the ticker is scheduled, so only a few
          # writes are required to show it.
          expect(inside.count { |n| n >= 5 }).to be >= 3, "ticks inside each write: #{inside.inspect}"
          expect(s.fact_count).to eq(inside.size)
        end
      ensure
        FileUtils.rm_rf(dir)
      end
    end
  end
end
