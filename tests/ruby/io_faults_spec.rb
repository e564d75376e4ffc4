# frozen_string_literal: true

require_relative "spec_helper"
require "json"

# I/O faults injected from Ruby (issue 5, item 4): a file-size limit that makes writes
# fail with EFBIG as a full disk would, snapshot paths occupied by directories, special
# files where the WAL should be, and (unless running as root, which ignores permissions)
# read-only locations. Each fault surfaces as an Igniter::Ledger::IOError with the errno;
# the failed operation is not visible, the store keeps working, and the ledger reopens
# cleanly with everything acknowledged.
RSpec.describe "I/O faults" do
  L = Igniter::Ledger unless defined?(L)
  FSIZE_CHILD = File.join(__dir__, "support", "fsize_child.rb")
  EFBIG = Errno::EFBIG::Errno
  EISDIR = Errno::EISDIR::Errno

  describe "a file-size limit (writes fail with EFBIG, like a full disk)" do
    def run_child(path, mode)
      out = IO.popen([RbConfig.ruby, "-I", REPO_LIB, FSIZE_CHILD, path, mode.to_s], err: %i[child out], &:read)
      expect($?.success?).to be(true), out
      JSON.parse(out, symbolize_names: true)
    end

    %i[fsync flush].each do |mode|
      it "refuses the write that does not fit, keeps the store working and reopens with every acknowledged fact (#{mode})" do
        r = run_child(wal_path, mode)
        w = r[:write]
        expect(w).to include(class: "Igniter::Ledger::IOError", errno: EFBIG)
        expect(w[:message]).to match(/\Aappending to #{Regexp.escape(wal_path)}: File too large/)
        expect(w[:ok]).to be >= 1 # some writes fitted before the limit
        expect(w[:fact_count]).to eq(10 + w[:ok]) # the failed one is not visible
        expect(w[:latest]).to eq(r[:acked][9 + w[:ok]]) # reads see the last acknowledged write
        # Nothing of the failed write stayed in the file. (In :fsync mode the file is longer
        # than the log while open, reserved space that the failed write's cut gives back;
        # the reopen below finds no torn tail either way.)
        if mode == :fsync
          expect(w[:wal]).to be <= w[:wal_before]
        else
          expect(w[:wal]).to eq(w[:wal_before])
        end

        t = r[:transaction]
        expect(t).to include(class: "Igniter::Ledger::IOError", errno: EFBIG, visible: 0)
        expect(t[:after]).to eq(t[:before])

        c = r[:checkpoint]
        expect(c).to include(class: "Igniter::Ledger::IOError", errno: EFBIG)
        expect(c[:message]).to match(/\.snap\.tmp: File too large/)
        expect(c[:fact_count]).to eq(c[:fact_count_before])
        expect(c[:snapshot]).to eq(r[:snapshot]) # the old snapshot is untouched

        expect(r[:after]).to eq(error: nil, checkpoint: r[:fact_count])
        L.open(wal_path) do |s|
          expect(s.open_report[:torn_tail]).to be_nil
          expect(s.open_report[:snapshot][:status]).to eq(:loaded)
          expect(s.fact_count).to eq(r[:fact_count])
          expect(r[:acked].reject { |id| s.fact_by_id(id) }).to eq([])
          expect(s.fact_count).to eq(r[:acked].size) # failed writes did not come back
          (0...5).each { |i| expect(s.read(store: :a, key: "t#{i}")).to be_nil }
          expect(s.read(store: :a, key: "after")).to eq(:ok)
        end
      end
    end

    it "in :none mode fails the flush that does not fit; acknowledged (buffered) writes reach the file once there is room" do
      r = run_child(wal_path, :none)
      w = r[:write]
      expect(w).to include(class: "Igniter::Ledger::IOError", errno: EFBIG)
      expect(w[:fact_count]).to eq(10 + w[:ok])
      expect(r[:checkpoint]).to include(class: "Igniter::Ledger::IOError", errno: EFBIG)
      expect(r[:checkpoint][:snapshot]).to eq(r[:snapshot])
      expect(r[:after]).to eq(error: nil, checkpoint: r[:fact_count])
      L.open(wal_path) do |s|
        expect(s.open_report[:torn_tail]).to be_nil
        expect(s.fact_count).to eq(r[:fact_count])
        expect(r[:acked].reject { |id| s.fact_by_id(id) }).to eq([])
      end
    end
  end

  describe "snapshot paths taken by directories" do
    def store_with_facts(n = 3)
      s = L.open(wal_path)
      n.times { |i| s.write(store: :a, key: "k#{i}", value: i) }
      s
    end

    it "raises IOError (EISDIR) when the snapshot cannot be renamed into place; writes go on; reopen ignores it" do
      Dir.mkdir("#{wal_path}.snap")
      s = store_with_facts
      expect { s.checkpoint }.to raise_error(L::IOError) { |e|
        expect(e.errno).to eq(EISDIR)
        expect(e.message).to match(/\Arenaming #{Regexp.escape(wal_path)}\.snap\.tmp to #{Regexp.escape(wal_path)}\.snap: Is a directory/)
      }
      expect(s.write(store: :a, key: "k0", value: :later).causation).not_to be_nil
      s.close
      L.open(wal_path) do |r|
        expect(r.open_report[:snapshot][:status]).to eq(:ignored)
        expect(r.open_report[:snapshot][:reason]).to match(/Is a directory/)
        expect(r.fact_count).to eq(4)
        expect(r.read(store: :a, key: "k0")).to eq(:later)
      end
    end

    it "raises IOError (EISDIR) when the temporary snapshot cannot be created; reopen reports the leftover" do
      Dir.mkdir("#{wal_path}.snap.tmp")
      s = store_with_facts
      expect { s.checkpoint }.to raise_error(L::IOError, /\Acreating #{Regexp.escape(wal_path)}\.snap\.tmp: Is a directory/) { |e|
        expect(e.errno).to eq(EISDIR)
      }
      expect(File.exist?("#{wal_path}.snap")).to be(false)
      s.write(store: :a, key: "k9", value: 9)
      s.close
      L.open(wal_path) do |r|
        expect(r.open_report).to include(snapshot: { status: :absent }, stale_snapshot_tmp: true)
        expect(r.fact_count).to eq(4)
      end
    end
  end

  describe "a WAL path that is not a regular file" do
    it "raises IOError for a directory" do
      expect { L.open(tmp_dir) }.to raise_error(L::IOError, /\Aopening #{Regexp.escape(tmp_dir)}: not a regular file/) { |e|
        expect(e.errno).to be_nil
      }
    end

    # Reading a device or a FIFO would never end: they are refused before anything is read.
    it "refuses character devices and FIFOs, also through symlinks, before reading them" do
      fifo = File.join(tmp_dir, "fifo.wal")
      File.mkfifo(fifo)
      zero = File.join(tmp_dir, "zero.wal")
      File.symlink("/dev/zero", zero)
      ["/dev/full", "/dev/null", zero, fifo].each do |p|
        next unless File.exist?(p)

        expect { L.open(p) }.to raise_error(L::IOError, /\Aopening #{Regexp.escape(p)}: not a regular file/) { |e|
          expect(e.errno).to be_nil
          expect(e).to be_a(L::StorageError)
        }
      end
      expect(Dir.children(tmp_dir).sort).to eq(%w[fifo.wal zero.wal])
    end
  end

  describe "locations the process may not write" do
    it "raises IOError (EACCES) for a read-only directory and a read-only WAL" do
      skip "running as root: permission bits do not apply" if Process.euid.zero?

      L.open(wal_path) { |s| s.write(store: :a, key: "k", value: 1) }
      ro = File.join(tmp_dir, "ro")
      Dir.mkdir(ro)
      File.chmod(0o555, ro)
      expect { L.open(File.join(ro, "x.wal")) }.to raise_error(L::IOError) { |e| expect(e.errno).to eq(Errno::EACCES::Errno) }
      File.chmod(0o444, wal_path)
      expect { L.open(wal_path) }.to raise_error(L::IOError) { |e| expect(e.errno).to eq(Errno::EACCES::Errno) }
    ensure
      File.chmod(0o755, ro) if ro && File.exist?(ro)
    end

    it "raises IOError (EPERM) for an immutable WAL file (root: chattr +i), changing nothing" do
      L.open(wal_path) { |s| s.write(store: :a, key: "k", value: 1) }
      size = File.size(wal_path)
      immutable = system("chattr", "+i", wal_path, out: File::NULL, err: File::NULL)
      skip "chattr +i is not available here" unless immutable

      begin
        expect { L.open(wal_path) }.to raise_error(L::IOError, /\Aopening #{Regexp.escape(wal_path)}: Operation not permitted/) { |e|
          expect(e.errno).to eq(Errno::EPERM::Errno)
        }
        expect(File.size(wal_path)).to eq(size)
      ensure
        system("chattr", "-i", wal_path, out: File::NULL, err: File::NULL)
      end
      L.open(wal_path) { |s| expect(s.read(store: :a, key: "k")).to eq(1) }
    end
  end
end
