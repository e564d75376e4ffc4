# frozen_string_literal: true

module Igniter
  module Ledger
    # The exception classes are defined by the native extension:
    #
    #   Igniter::Ledger::Error < StandardError        every error of the ledger itself
    #     ConflictError                                expected: check failed; nothing written
    #     ClosedError                                  the store was closed
    #     CoercionError                                a coercion returned something unusable
    #     StorageError                                 the files
    #       IOError                                    an operating-system I/O error (errno)
    #       CorruptionError                            damage followed by valid frames (path, offset)
    #       LockedError                                the file is open elsewhere
    #       PoisonedError                              writes refused after an unrecoverable I/O failure
    #   Igniter::Ledger::UnknownScopeError < ArgumentError   query on an unregistered scope
    #
    # A ledger error whose class subclasses the standard class the 0.5.x gem raised
    # (UnknownScopeError < ArgumentError, so existing `rescue ArgumentError` clauses keep
    # working) carries Error::Tag, and `rescue Igniter::Ledger::Error` (Error.===) catches
    # it too.
    #
    # Values the ledger cannot store raise TypeError, ArgumentError or RangeError naming
    # the path inside the value, e.g. "value[:meta][:at] is a Time".
    class Error
      # Marks ledger errors that subclass a standard class instead of Error.
      module Tag; end

      # Matches Error's subclasses and the tagged ledger errors (used by `rescue`).
      def self.===(other)
        super || Tag === other
      end
    end

    class ConflictError
      # store (Symbol), key (String), expected and actual latest fact ids (String or nil)
      attr_reader :store, :key, :expected, :actual
    end

    class CorruptionError
      attr_reader :path, :offset, :reason
    end

    class LockedError
      attr_reader :path
    end

    class IOError
      # the OS error number, when there is one
      attr_reader :errno
    end

    class UnknownScopeError
      include Error::Tag
      attr_reader :store, :scope
    end
  end
end
