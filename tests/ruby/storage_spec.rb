# frozen_string_literal: true

require_relative "spec_helper"
require "json"
require "securerandom"
require "zlib"

RSpec.describe "file-backed storage" do
  L = Igniter::Ledger unless defined?(L)

  def frames(path)
    bytes = File.binread(path)
    out = []
    pos = 0
    while pos < bytes.bytesize
      len = bytes.byteslice(pos, 4).unpack1("N")
      out << [pos, len]
      pos += 8 + len
    end
    out
  end

  def write_facts(path, n, durability: :fsync)
    L.open(path, durability: durability) do |s|
      Array.new(n) { |i| s.write(store: :items, key: "k#{i}", value: { n: i }) }
    end
  end

  describe "reopen" do
    it "replays every fact with ids, times, causation and values intact" do
      written = L.open(wal_path) do |s|
        a = s.write(store: :r, key: "r1", value: { status: :open }, valid_time: 5, producer: :me)
        b = s.write(store: :r, key: "r1", value: { status: :done })
        c = s.append(history: :ev, event: { order: "o1" }, partition_key: :order)
        [a, b, c]
      end
      L.open(wal_path) do |s|
        expect(s.fact_count).to eq(3)
        expect(s.fact_log_all).to eq(written)
        expect(s.fact_log_all.map(&:to_h)).to eq(written.map(&:to_h))
        expect(s.read(store: :r, key: "r1")).to eq(status: :done)
        expect(s.read(store: :r, key: "r1", as_of: written[0].transaction_time)).to eq(status: :open)
        expect(s.history_partition(store: :ev, partition_key: :order, partition_value: "o1").size).to eq(1)
        report = s.open_report
        expect(report).to include(path: wal_path, frames_replayed: 3, facts_loaded: 3, torn_tail: nil,
                                  recovered: nil, legacy_frames: 0, stale_snapshot_tmp: false)
        expect(report[:wal_bytes]).to eq(File.size(wal_path))
        expect(report[:snapshot]).to eq(status: :absent)
        # transaction times keep increasing after reopen
        expect(s.write(store: :r, key: "r1", value: 1).transaction_time).to be > written.last.transaction_time
        expect(s.read_fact(store: :r, key: "r1").causation).to eq(written[1].id)
      end
    end

    it "keeps every durability mode's writes across a clean close" do
      %i[fsync flush none].each do |mode|
        path = wal_path("#{mode}.wal")
        write_facts(path, 20, durability: mode)
        L.open(path) { |s| expect(s.fact_count).to eq(20) }
      end
    end

    it "survives a process that exits without closing in flush mode" do
      path = wal_path
      ok = system(RbConfig.ruby, "-I", REPO_LIB, "-e", <<~RUBY, path)
        require "igniter-ledger"
        s = Igniter::Ledger.open(ARGV[0], durability: :flush)
        5.times { |i| s.write(store: :a, key: "k\#{i}", value: i) }
        exit!(0) # no close, no finalizers
      RUBY
      expect(ok).to be(true)
      L.open(path) { |s| expect(s.fact_count).to eq(5) }
    end
  end

  describe "checkpoint" do
    it "writes a snapshot that reopen loads, then replays only the WAL after it" do
      report = nil
      L.open(wal_path) do |s|
        3.times { |i| s.write(store: :a, key: "k#{i}", value: i) }
        report = s.checkpoint
        expect(report).to include(path: wal_path + ".snap", fact_count: 3)
        expect(report[:bytes]).to eq(File.size(wal_path + ".snap"))
      end
      # Closed: the WAL ends exactly at its last frame (no reserved space remains).
      expect(report[:wal_offset]).to eq(File.size(wal_path))
      L.open(wal_path) { |s| 2.times { |i| s.write(store: :a, key: "later#{i}", value: i) } }
      expect(File.exist?(wal_path + L::FileBackend::SNAPSHOT_SUFFIX)).to be(true)
      L.open(wal_path) do |s|
        expect(s.open_report[:snapshot]).to eq(status: :loaded, facts: 3, wal_offset: frames(wal_path)[3][0])
        expect(s.open_report[:frames_replayed]).to eq(2)
        expect(s.fact_count).to eq(5)
        expect(s.read(store: :a, key: "later1")).to eq(1)
      end
    end

    it "falls back to the whole WAL when the snapshot is damaged, and ignores a stale .snap.tmp" do
      L.open(wal_path) do |s|
        4.times { |i| s.write(store: :a, key: "k#{i}", value: i) }
        s.checkpoint
      end
      snap = File.binread(wal_path + ".snap")
      snap.setbyte(snap.bytesize / 2, snap.getbyte(snap.bytesize / 2) ^ 0xFF)
      File.binwrite(wal_path + ".snap", snap)
      File.binwrite(wal_path + ".snap.tmp", "half-written")
      L.open(wal_path) do |s|
        expect(s.open_report[:snapshot][:status]).to eq(:ignored)
        expect(s.open_report[:snapshot][:reason]).to be_a(String)
        expect(s.open_report[:stale_snapshot_tmp]).to be(true)
        expect(s.fact_count).to eq(4)
      end
    end

    it "is a no-op in memory" do
      expect(L.memory.checkpoint).to be_nil
    end
  end

  describe "recovery" do
    it "cuts a torn final frame, keeping its bytes in a side file, and reports it" do
      write_facts(wal_path, 3)
      good = File.size(wal_path)
      File.open(wal_path, "ab") { |f| f.write([500].pack("N") + "partial") }
      L.open(wal_path) do |s|
        expect(s.fact_count).to eq(3)
        side = "#{wal_path}.torn-#{good}"
        expect(s.open_report[:torn_tail]).to eq(offset: good, bytes: 11, side_file: side)
        expect(File.binread(side)).to eq([500].pack("N") + "partial")
        expect(s.open_report[:zero_tail]).to eq(0)
        s.write(store: :items, key: "after", value: 1)
      end
      L.open(wal_path) do |s|
        expect(s.open_report[:torn_tail]).to be_nil
        expect(s.fact_count).to eq(4)
      end
    end

    it "treats a damaged final frame (bad CRC) as torn" do
      write_facts(wal_path, 3)
      bytes = File.binread(wal_path)
      bytes.setbyte(bytes.bytesize - 6, bytes.getbyte(bytes.bytesize - 6) ^ 1)
      File.binwrite(wal_path, bytes)
      L.open(wal_path) do |s|
        expect(s.fact_count).to eq(2)
        expect(s.open_report[:torn_tail][:offset]).to eq(frames(wal_path).last[0] + frames(wal_path).last[1] + 8)
      end
    end

    it "refuses mid-log corruption, naming file and offset, and recovers on request" do
      write_facts(wal_path, 4)
      fr = frames(wal_path)
      bad_at = fr[1][0]
      bytes = File.binread(wal_path)
      bytes.setbyte(bad_at + 10, bytes.getbyte(bad_at + 10) ^ 0xFF)
      File.binwrite(wal_path, bytes)

      expect { L.open(wal_path) }.to raise_error(L::CorruptionError) { |e|
        expect(e.message).to include(wal_path, "offset #{bad_at}")
        expect(e.path).to eq(wal_path)
        expect(e.offset).to eq(bad_at)
        expect(e).to be_a(L::StorageError)
      }
      expect(File.size(wal_path)).to eq(bytes.bytesize) # refusing changed nothing

      L.open(wal_path, recover: true) do |s|
        expect(s.fact_count).to eq(1)
        rec = s.open_report[:recovered]
        expect(rec[:offset]).to eq(bad_at)
        expect(rec[:bytes]).to eq(bytes.bytesize - bad_at)
        expect(File.binread(rec[:side_file])).to eq(bytes.byteslice(bad_at..))
      end
      L.open(wal_path) { |s| expect(s.fact_count).to eq(1) }
    end

    it "recovers through FileBackend options too" do
      write_facts(wal_path, 3)
      bytes = File.binread(wal_path)
      bytes.setbyte(6, bytes.getbyte(6) ^ 0xFF)
      File.binwrite(wal_path, bytes)
      s = L::LedgerStore.new(backend: L::FileBackend.new(wal_path, recover: true))
      expect(s.fact_count).to eq(0)
      expect(s.open_report[:recovered][:offset]).to eq(0)
      s.close
    end
  end

  describe "locking" do
    it "refuses a second open of the same file in this process until the first closes" do
      first = L.open(wal_path)
      expect { L.open(wal_path) }.to raise_error(L::LockedError, /locked/) { |e| expect(e.path).to eq(wal_path) }
      first.close
      L.open(wal_path, &:fact_count)
    end

    it "refuses an open from another process" do
      L.open(wal_path) do
        code = <<~RUBY
          require "igniter-ledger"
          begin
            Igniter::Ledger.open(ARGV[0])
          rescue Igniter::Ledger::LockedError
            exit 3
          end
          exit 0
        RUBY
        system(RbConfig.ruby, "-I", REPO_LIB, "-e", code, wal_path)
        expect($?.exitstatus).to eq(3)
      end
    end
  end

  describe "I/O errors" do
    it "raises IOError for an unusable path, writing nothing" do
      expect { L.open(File.join(tmp_dir, "no", "such", "dir", "x.wal")) }.to raise_error(L::IOError) { |e|
        expect(e.errno).to eq(Errno::ENOENT::Errno)
        expect(e).to be_a(L::StorageError)
      }
    end

    it "raises IOError for a directory" do
      expect { L.open(tmp_dir) }.to raise_error(L::StorageError)
    end
  end

  describe "0.5.2 FileBackend files" do
    def json_frame(hash)
      body = JSON.generate(hash)
      [body.bytesize].pack("N") + body + [Zlib.crc32(body)].pack("N")
    end

    it "opens a WAL written by the 0.5.2 Ruby gem (JSON frames), keys read back as Symbols" do
      id1 = SecureRandom.uuid
      id2 = SecureRandom.uuid
      File.binwrite(wal_path,
                    json_frame(id: id1, store: "tasks", key: "t1", value: { title: "Write", status: "open" },
                               value_hash: "x", causation: nil, timestamp: 1_700_000_000.5, term: nil,
                               schema_version: 1, producer: nil, derivation: nil) +
                    json_frame(id: id2, store: "tasks", key: "t1", value: { title: "Write", status: "done", "n" => [1, 2.5] },
                               value_hash: "y", causation: id1, transaction_time: 1_700_000_001.25, valid_time: 5.0,
                               schema_version: 2, producer: { "app" => "old" }, derivation: nil))
      L.open(wal_path) do |s|
        expect(s.open_report[:legacy_frames]).to eq(2)
        expect(s.read(store: :tasks, key: "t1")).to eq(title: "Write", status: "done", n: [1, 2.5])
        old = s.read_fact(store: :tasks, key: "t1", as_of: 1_700_000_000.5)
        expect(old.id).to eq(id1)
        expect(old.value).to eq(title: "Write", status: "open")
        latest = s.fact_by_id(id2)
        expect(latest.causation).to eq(id1)
        expect(latest.transaction_time).to eq(1_700_000_001.25)
        expect(latest.valid_time).to eq(5.0)
        expect(latest.schema_version).to eq(2)
        expect(latest.producer).to eq(app: "old")
        expect(latest.value_hash).to match(/\A\h{64}\z/)
        s.write(store: :tasks, key: "t1", value: { title: "Write", status: :archived })
      end
      L.open(wal_path) do |s|
        expect(s.history(store: :tasks, key: "t1").map { |f| f.value[:status] }).to eq(["open", "done", :archived])
      end
    end
  end
end
