# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "retention, compaction, exact prune and erasure" do
  let(:ledger) { Igniter::Ledger::LedgerStore.new }

  def all_bytes(dir)
    Dir.children(dir).map { |n| File.binread(File.join(dir, n)) }.join
  end

  describe "policies" do
    it "registers policies, answers them through schema_graph, and is chainable" do
      expect(ledger.set_retention(:sensors, strategy: :ephemeral)).to be(ledger)
      ledger.set_retention(:readings, strategy: :rolling_window, duration: 60)
      g = ledger.schema_graph
      expect(g.retention_stores).to contain_exactly(:sensors, :readings)
      expect(g.retention_for(store: :readings).duration).to eq(60.0)
      expect(g.retention_snapshot[:sensors]).to eq({ strategy: :ephemeral, duration: nil })
      expect(g[:paths]).to eq([])
    end

    it "rejects bad policies with ArgumentError naming the argument, changing nothing" do
      expect { ledger.set_retention(:s, strategy: :forever) }.to raise_error(ArgumentError, /strategy/)
      expect { ledger.set_retention(:s, strategy: :rolling_window) }.to raise_error(ArgumentError, /duration/)
      expect { ledger.set_retention(:s, strategy: :rolling_window, duration: -1) }
        .to raise_error(ArgumentError, /duration/)
      expect { ledger.set_retention(:s, strategy: :ephemeral, duration: "soon") }.to raise_error(TypeError, /duration/)
      expect(ledger.retention_policies).to be_empty
    end
  end

  describe "compaction" do
    it "drops superseded facts and keeps reads, indexes and caches right" do
      ledger.set_retention(:sensors, strategy: :ephemeral)
      f1 = ledger.write(store: :sensors, key: "s1", value: { v: 1 })
      expect(ledger.read(store: :sensors, key: "s1")).to eq({ v: 1 }) # cached
      ledger.write(store: :sensors, key: "s1", value: { v: 2 })
      reports = ledger.compact
      expect(reports).to eq([{ store: :sensors, strategy: :ephemeral, dropped_count: 1, kept_count: 1,
                               receipt_id: ledger.compaction_receipts.first.id, durable: false }])
      expect(ledger.fact_by_id(f1.id)).to be_nil
      expect(ledger.fact_ref(f1.id)).to be_nil
      expect(ledger.read(store: :sensors, key: "s1")).to eq({ v: 2 })
      expect(ledger.history(store: :sensors, key: "s1").map(&:value)).to eq([{ v: 2 }])
    end

    it "raises ClosedError on a closed store" do
      ledger.set_retention(:s, strategy: :ephemeral)
      ledger.close
      expect { ledger.compact }.to raise_error(Igniter::Ledger::ClosedError)
    end

    it "is durable: a reopen shows the compacted ledger" do
      Dir.mktmpdir do |dir|
        path = File.join(dir, "c.wal")
        Igniter::Ledger::LedgerStore.open(path, durability: :flush) do |s|
          s.set_retention(:s, strategy: :ephemeral)
          10.times { |i| s.write(store: :s, key: "k", value: { i: i }) }
          s.checkpoint
          expect(s.compact.first).to include(dropped_count: 9, durable: true)
        end
        expect(Dir.children(dir)).to eq(["c.wal"])
        Igniter::Ledger::LedgerStore.open(path) do |s|
          expect(s.history(store: :s, key: "k").map(&:value)).to eq([{ i: 9 }])
          expect(s.compaction_receipts(store: :s).size).to eq(1)
        end
      end
    end
  end

  describe "exact prune" do
    it "removes the facts from every read path, including cached partition slices" do
      a = ledger.append(history: :events, event: { order: "o1", n: 1 }, partition_key: :order)
      b = ledger.append(history: :events, event: { order: "o1", n: 2 }, partition_key: :order)
      expect(ledger.history_partition(store: :events, partition_key: :order, partition_value: "o1").size).to eq(2)
      r = ledger.prune_fact_ids(fact_ids: [a.id, "missing"], reason: :cleanup, metadata: { by: "spec" })
      expect(r).to include(status: :ok, pruned_count: 1, missing_count: 1, missing_ids: ["missing"])
      expect(r[:pruned_fact_refs].first).to include(id: a.id, store: :events)
      expect(r[:pruned_fact_refs].first).not_to have_key(:value)
      slice = ledger.history_partition(store: :events, partition_key: :order, partition_value: "o1")
      expect(slice.map(&:id)).to eq([b.id])
      ledger.append(history: :events, event: { order: "o1", n: 3 }, partition_key: :order)
      expect(ledger.history_partition(store: :events, partition_key: :order, partition_value: "o1").size).to eq(2)
      receipt = ledger.fact_by_id(r[:receipt_id])
      expect(receipt.store).to eq(:__fact_prune_receipts)
      expect(receipt.value).to include(reason: :cleanup, pruned_count: 1, metadata: { by: "spec" })
    end
  end

  describe "erasure" do
    it "keeps tombstones with their proofs; read answers nil; the values leave every file" do
      Dir.mktmpdir do |dir|
        path = File.join(dir, "e.wal")
        secret = "NIGHTINGALE-7734-SECRET"
        Igniter::Ledger::LedgerStore.open(path, durability: :flush) do |s|
          f1 = s.write(store: :people, key: "p1", value: { name: secret }, producer: { app: "crm" })
          f2 = s.write(store: :people, key: "p1", value: { name: "#{secret}-2" })
          s.write(store: :people, key: "p2", value: { name: "Bob" })
          expect(s.read(store: :people, key: "p1")).to eq({ name: "#{secret}-2" })
          proof = s.lineage(store: :people, key: "p1")[:proof_hash]
          s.checkpoint
          expect(all_bytes(dir)).to include(secret)
          r = s.erase(store: :people, key: "p1", reason: :gdpr_request, actor: "dpo")
          expect(r).to include(status: :ok, erased_count: 2, durable: true)
          expect(s.read(store: :people, key: "p1")).to be_nil
          tomb = s.read_fact(store: :people, key: "p1")
          expect(tomb).to be_erased
          expect(tomb.value).to be_nil
          expect(tomb.value_hash).to eq(f2.value_hash)
          expect(s.fact_by_id(f1.id)).to be_erased
          expect(s.fact_by_id(f1.id).producer).to eq({ app: "crm" })
          expect(s.history(store: :people, key: "p1").map(&:id)).to eq([f1.id, f2.id])
          expect(s.lineage(store: :people, key: "p1")[:proof_hash]).to eq(proof)
          expect(s.read(store: :people, key: "p2")).to eq({ name: "Bob" })
          expect(s.fact_by_id(r[:receipt_id]).value).to include(actor: "dpo", reason: :gdpr_request)
          expect(all_bytes(dir)).not_to include(secret)
        end
        Igniter::Ledger::LedgerStore.open(path) do |s|
          expect(s.read(store: :people, key: "p1")).to be_nil
          expect(s.history(store: :people, key: "p1").all?(&:erased?)).to be(true)
        end
        expect(all_bytes(dir)).not_to include(secret)
      end
    end

    it "raises ArgumentError for an unknown key and changes nothing" do
      ledger.write(store: :people, key: "p1", value: 1)
      expect { ledger.erase(store: :people, key: "nobody", reason: :x) }.to raise_error(ArgumentError, /key/)
      expect { ledger.erase(reason: :x) }.to raise_error(ArgumentError)
      expect(ledger.fact_count).to eq(1)
    end

    it "erases by fact ids and reports missing ones" do
      f = ledger.write(store: :people, key: "p1", value: "x")
      r = ledger.erase(fact_ids: [f.id, "nope"], reason: :x)
      expect(r).to include(erased_count: 1, missing_ids: ["nope"])
      expect(ledger.fact_by_id(f.id)).to be_erased
    end
  end

  describe "compaction_activity" do
    it "is a plain, unfrozen Array of entries sorted by time" do
      ledger.set_retention(:s, strategy: :ephemeral)
      ledger.write(store: :s, key: "k", value: 1)
      ledger.write(store: :s, key: "k", value: 2)
      ledger.compact
      f = ledger.write(store: :t, key: "k", value: 1)
      ledger.prune_fact_ids(fact_ids: [f.id], reason: :cleanup)
      g = ledger.write(store: :u, key: "k", value: 1)
      ledger.erase(fact_ids: [g.id], reason: :gdpr)
      act = ledger.compaction_activity
      expect(act).to be_an_instance_of(Array)
      expect(act).not_to be_frozen
      expect(act.map { |e| e[:kind] }).to eq(%i[retention_compaction exact_prune erasure])
      expect(act.first).to include(executor: :store_compact, store: :s, status: :ok, reason: :ephemeral, fact_count: 1)
      expect(act.map { |e| e[:occurred_at] }).to eq(act.map { |e| e[:occurred_at] }.sort)
      act << { kind: :mine }
      expect(ledger.compaction_activity(store: :s).map { |e| e[:kind] }).to eq([:retention_compaction])
    end
  end
end
