# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"
require "fileutils"
require_relative "support/gvl_ticks"

# Issue 14: one open handle per segment root (the directory lock), and fsync commits of a
# segmented store that let other Ruby threads run (the GVL is released around them).
RSpec.describe "segmented storage: directory lock and GVL" do
  around do |ex|
    Dir.mktmpdir("igniter-seglock-") do |dir|
      @root = File.join(dir, "root")
      ex.run
    end
  end

  attr_reader :root

  # What a forked child got when it opened the root: 0 locked (naming the root), 1 opened,
  # 2 another error.
  def child_open(&open)
    pid = fork do
      begin
        s = open.call
        s.close
        exit!(1)
      rescue Igniter::Ledger::LockedError => e
        exit!(e.message.include?(root) && e.path.to_s == root ? 0 : 2)
      rescue StandardError
        exit!(2)
      end
    end
    Process.wait2(pid)[1].exitstatus
  end

  it "refuses a second open of the same root in this process, naming the root" do
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      s.write(store: :a, key: "k", value: 1)
      expect { Igniter::Ledger.segmented(root, durability: :flush) }
        .to raise_error(Igniter::Ledger::LockedError, /#{Regexp.escape(root)}/)
      expect { Igniter::Ledger::SegmentedFileBackend.new(root) }
        .to raise_error(Igniter::Ledger::LockedError) { |e| expect(e.path.to_s).to eq(root) }
      s.write(store: :a, key: "k", value: 2)
    end
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      expect(s.read(store: :a, key: "k")).to eq(2)
    end
  end

  it "refuses a forked child while the parent holds the root, and lets it in after close" do
    s = Igniter::Ledger.segmented(root, durability: :flush)
    s.write(store: :a, key: "k", value: 1)
    expect(child_open { Igniter::Ledger.segmented(root, durability: :flush) }).to eq(0)
    expect(child_open { Igniter::Ledger::SegmentedFileBackend.new(root) }).to eq(0)
    s.write(store: :a, key: "k", value: 2)
    s.close
    expect(child_open { Igniter::Ledger.segmented(root, durability: :flush) }).to eq(1)
    Igniter::Ledger.segmented(root, durability: :flush) do |again|
      expect(again.history(store: :a, key: "k").size).to eq(2)
    end
  end

  it "refuses writes from a forked child of the opener (the files are the parent's)" do
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      s.write(store: :a, key: "k", value: 1)
      pid = fork do
        begin
          s.write(store: :a, key: "k", value: 99)
          exit!(1)
        rescue Igniter::Ledger::Error
          exit!(0)
        end
      end
      expect(Process.wait2(pid)[1].exitstatus).to eq(0)
      s.write(store: :a, key: "k", value: 2)
    end
    Igniter::Ledger.segmented(root, durability: :flush) do |s|
      expect(s.history(store: :a, key: "k").map(&:value)).to eq([1, 2])
    end
  end

  it "keeps other Ruby threads running while a segmented store commits in fsync mode" do
    dir = Dir.mktmpdir("igniter-seg-gvl", "/var/tmp") # a real disk: fsync takes time
    begin
      Igniter::Ledger.segmented(File.join(dir, "root"), durability: :fsync) do |s|
        inside = GVLTicks.inside_writes { |i| s.write(store: :t, key: "k", value: i) }
        expect(inside.count { |n| n >= 5 }).to be >= 3, "ticks inside each write: #{inside.inspect}"
        expect(s.fact_count).to eq(inside.size)
      end
    ensure
      FileUtils.rm_rf(dir)
    end
  end

  it "keeps other Ruby threads running while SegmentedFileBackend#write_fact fsyncs" do
    dir = Dir.mktmpdir("igniter-seg-gvl", "/var/tmp")
    begin
      b = Igniter::Ledger::SegmentedFileBackend.new(File.join(dir, "root"), durability: :fsync)
      inside = GVLTicks.inside_writes do |i|
        b.write_fact(Igniter::Ledger::Fact.build(store: :t, key: "k#{i}", value: { v: i }))
      end
      expect(inside.count { |n| n >= 5 }).to be >= 3, "ticks inside each write: #{inside.inspect}"
      expect(b.replay.size).to eq(inside.size)
      b.close
    ensure
      FileUtils.rm_rf(dir)
    end
  end
end
