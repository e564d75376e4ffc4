# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"
require "fileutils"

RSpec.describe "segmented storage (Igniter::Ledger.segmented, SegmentedFileBackend)" do
  around do |ex|
    Dir.mktmpdir("igniter-seg-") do |dir|
      @root = File.join(dir, "root")
      ex.run
    end
  end

  attr_reader :root

  def segment_files(store)
    Dir[File.join(root, "wal", "store=#{store}", "**", "segment-*.wal")]
  end

  it "is a whole LedgerStore whose facts come back with every field after reopen" do
    written = nil
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      expect(s).to be_a(Igniter::Ledger::LedgerStore)
      s.write(store: :tasks, key: "t1", value: { title: "a", tags: [:x] }, producer: { by: "me" })
      written = s.write(store: :tasks, key: "t1", value: { title: "b" }, valid_time: 12.5)
      s.append(history: :events, event: { order_id: "o1" }, partition_key: :order_id)
    end
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      f = s.history(store: :tasks, key: "t1").last
      expect(f.id).to eq(written.id)
      expect(f.causation).to eq(written.causation)
      expect(f.transaction_time).to eq(written.transaction_time)
      expect(f.valid_time).to eq(12.5)
      expect(f.value_hash).to eq(written.value_hash)
      expect(s.read(store: :tasks, key: "t1")).to eq({ title: "b" })
      expect(s.history(store: :tasks, key: "t1").first.producer).to eq({ by: "me" })
      expect(s.history_partition(store: :events, partition_key: :order_id, partition_value: "o1").size).to eq(1)
      stats = s.storage_stats(store: :tasks)["stores"]["tasks"]
      expect(stats["sealed_count"]).to eq(1)
      expect(stats["fact_count"]).to eq(2)
      expect(s.segment_manifest["stores"].keys).to contain_exactly("tasks", "events")
    end
  end

  it "keeps a batch over several stores whole, and a clean close leaves no journal" do
    Igniter::Ledger.segmented(root) do |s|
      s.transaction do |t|
        t.write(store: :a, key: "k", value: 1)
        t.write(store: :b, key: "k", value: 2)
      end
    end
    expect(File.exist?(File.join(root, "commit.journal"))).to be false
    Igniter::Ledger.segmented(root) do |s|
      expect([s.read(store: :a, key: "k"), s.read(store: :b, key: "k")]).to eq([1, 2])
    end
  end

  it "purges whole sealed segments, keeping the latest fact of each key, and reports them as activity" do
    Igniter::Ledger.segmented(root, retention: { r: { strategy: :ephemeral } }) do |s|
      s.write(store: :r, key: "only_old", value: 1)
      s.write(store: :r, key: "k", value: 1)
      s.seal_segments!
      s.write(store: :r, key: "k", value: 2)
      s.seal_segments!
      receipts = s.purge_segments!
      expect(receipts.size).to eq(1)
      expect(receipts.first).to include("purge_strategy" => "ephemeral", "carried_forward" => 1)
      entry = s.compaction_activity(store: :r).last
      expect(entry).to include(kind: :segment_purge, executor: :segmented_backend, status: :ok)
    end
    Igniter::Ledger.segmented(root) do |s|
      expect(s.read(store: :r, key: "only_old")).to eq(1)
      expect(s.read(store: :r, key: "k")).to eq(2)
      expect(s.prune_fact_ids(fact_ids: [s.history(store: :r, key: "k").first.id], reason: :x))
        .to include(status: :unsupported, backend: "Igniter::Store::SegmentedFileBackend")
    end
  end

  it "refuses the rewrites of a single WAL on a segmented store" do
    Igniter::Ledger.segmented(root) do |s|
      s.write(store: :r, key: "k", value: 1)
      s.write(store: :r, key: "k", value: 2)
      s.set_retention(:r, strategy: :ephemeral)
      expect { s.compact(:r) }.to raise_error(ArgumentError, /segment/)
      expect(s.read(store: :r, key: "k")).to eq(2)
    end
  end

  it "quarantines a damaged sealed segment with a receipt; the other stores open" do
    Igniter::Ledger.segmented(root) do |s|
      s.write(store: :a, key: "k", value: 1)
      s.write(store: :b, key: "k", value: 2)
    end
    seg = segment_files(:a).first
    bytes = File.binread(seg)
    bytes.setbyte(bytes.bytesize - 6, bytes.getbyte(bytes.bytesize - 6) ^ 0x55)
    File.binwrite(seg, bytes)
    Igniter::Ledger.segmented(root) do |s|
      expect(s.read(store: :a, key: "k")).to be_nil
      expect(s.read(store: :b, key: "k")).to eq(2)
      expect(s.storage_stats["stores"]["a"]["quarantine_receipt_count"]).to eq(1)
    end
  end

  it "reports how flush: and durability: combine" do
    b = Igniter::Ledger::SegmentedFileBackend.new(root, codec: :compact_delta, flush: { every_n: 3 }, durability: :flush)
    4.times { |i| b.write_fact(Igniter::Ledger::Fact.build(store: :r, key: "k#{i}", value: i)) }
    snap = b.durability_snapshot
    expect(snap).to include("policy" => "every_n:3", "sync" => "flush")
    expect(snap["stores"]["r"]).to include("facts_on_disk" => 3, "buffered_count" => 1, "durability" => "buffered")
    b.close
  end

  it "names the bad argument" do
    expect { Igniter::Ledger.segmented(root, codec: :lz4) }.to raise_error(ArgumentError, /codec/)
    expect { Igniter::Ledger.segmented(root, time_bucket: :week) }.to raise_error(ArgumentError, /time_bucket/)
    expect { Igniter::Ledger.segmented(root, max_bytes: 0) }.to raise_error(ArgumentError, /max_bytes/)
    expect { Igniter::Ledger.segmented(root, flush: { every_n: 0 }) }.to raise_error(ArgumentError, /every_n/)
    FileUtils.mkdir_p(File.dirname(root))
    File.write(root, "x")
    expect { Igniter::Ledger.segmented(root) }.to raise_error(ArgumentError, /root/)
    expect { Igniter::Ledger::SegmentedFileBackend.new(root) }.to raise_error(ArgumentError, /root/)
  end

  it "raises the ledger's typed error, never nil, for a value whose sealed segment broke after open" do
    Igniter::Ledger.segmented(root, durability: :flush, max_bytes: 400) do |s|
      20.times { |i| s.write(store: :tasks, key: "t#{i}", value: { n: i, pad: "x" * 40 }) }
    end
    Igniter::Ledger.segmented(root, durability: :flush, max_bytes: 400) do |s|
      facts = s.history(store: :tasks, key: "t3")
      expect(facts.size).to eq(1)
      # Damage every segment in place (same size) after the open: no frame passes its CRC.
      segment_files(:tasks).each do |seg|
        bytes = File.binread(seg).bytes
        (0...bytes.size).step(7) { |j| bytes[j] ^= 0x21 }
        File.binwrite(seg, bytes.pack("C*"))
      end
      expect { facts.first.value }.to raise_error(Igniter::Ledger::Error)
      expect { s.read(store: :tasks, key: "t5") }.to raise_error(Igniter::Ledger::Error)
    end
  end
end
