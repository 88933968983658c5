// Package rules holds rule trees: the seed's rule_tree, rule_tree_node and
// rule_tree_node_line tables as a Go model (Tree, Node, Line), decoding
// from JSON and YAML, validation, a reference evaluator, and a compiler
// from a tree straight to a WebAssembly rule module (ABI v1, sdk/abi).
//
// A tree answers "which activity may this user join?": the walk starts at
// the root, each branch tests one attribute of the user (its RuleKey:
// userAge, userGender, userTags, userLevel, userCity or
// daysSinceRegistration, the keys of sdk/abi) along its lines, and the
// leaf reached holds the activity id, or 0 for "no match".
//
//	tree, err := rules.Decode(data)         // JSON or YAML
//	err = tree.Validate()                   // every problem, joined
//	id, matched, err := rules.Evaluate(tree, attrs)
//	wasm, err := rules.Compile(tree)        // a rule module for the wasm host
//
// Design decisions:
//
//   - The seed's names and numbers. Node types 1 (branch) and 2 (leaf),
//     limit types 1 to 6 (=, >, <, >=, <=, enum) keep the seed's column
//     values, so its rows translate one to one; JSON and YAML also accept
//     "branch", "leaf" and the operators, which read better. A line's
//     LimitValue is one value, or a list for enum (Values); integers are
//     decimal text, as in the seed's varchar column.
//
//   - Every branch names its default. The seed's engine returned nothing
//     when no line matched, which its callers had to guess about; here a
//     branch without Node.Default is an error, and the default is taken
//     when no line matches or the attribute is missing. "No match" is an
//     explicit leaf with value 0, usually one leaf shared by all defaults
//     (trees are DAGs: many lines may lead to one node). A default is a
//     field of the node rather than a line with a reserved limit type 0,
//     because the zero value of a forgotten limit type would then quietly
//     mean "always".
//
//   - One evaluation order. At a branch the lines leaving it are tried in
//     the order of Tree.Lines, the first whose condition holds wins, then
//     the default. Comparisons apply to integer keys only; = and enum to
//     every key. userTags holds one attribute per tag, so = is "has this
//     tag" and enum "has any of these tags". Strings compare byte for byte.
//
//   - Validation reports every problem at once (errors.Join of *Problem,
//     each with a Class and a place, each matching ErrInvalid): unknown
//     root, dangling lines and defaults, unreachable nodes, cycles,
//     branches without a default, lines leaving leaves, type mismatches,
//     limit values that do not parse, and lines that can never be taken.
//     The last covers duplicate and conflicting lines in one exact rule: a
//     line is dead when, for every value it matches, an earlier line of its
//     branch matches too (computed with a sweep over integer intervals, so
//     "< 25" then "< 20" is caught, and a map over strings), or when it
//     matches nothing ("> 9223372036854775807"). Overlapping lines are
//     legal: the order decides.
//
//   - Bounded input. Decode reads at most MaxDocumentSize bytes, rejects
//     unknown fields, trailing data, a second YAML document, YAML aliases
//     (a small document could expand into a huge one) and floats (YAML
//     would truncate 1.5 into an integer field). Trees hold at most
//     MaxNodes nodes, MaxLines lines, MaxStringLen-byte strings,
//     MaxEnumValues values per enum and MaxValues values of MaxValueBytes
//     in all; Validate checks these first, so validating and compiling cost
//     n log n at worst whoever sent the tree, and the module stays well
//     under 1 MiB.
//
//   - The evaluator is the reference, and fast enough to serve. It walks a
//     resolved copy of the tree (NewEvaluator validates once; Evaluate
//     validates each time), allocates nothing, and rejects attributes as
//     abi.RuleInput.Validate does, with the error code a module returns.
//
//   - The compiler emits Wasm directly with sdk/wasmgen: no toolchain, and
//     tens of microseconds for the seed's tree. The module imports nothing,
//     exports memory (fixed size), lottery_abi_version, input_ptr
//     (InputAddr), input_cap (abi.MaxInputSize) and decide, and the same
//     tree always gives the same bytes. decide checks its input exactly as
//     abi.RuleInput.UnmarshalBinary does, in the same order with the same
//     codes, in one pass that keeps the attributes the tree tests; then it
//     runs the tree as straight-line code: one small function per branch
//     node whose lines are inline comparisons against constants, returning
//     a leaf's value or calling the next branch's function. There is no
//     interpreter and no tree data at run time.
//
//   - Shaped for wazero's compiler. Two choices keep wazero's compile time
//     about linear in the tree's size; each replaced one that took seconds
//     for a tree at the bounds. A function per branch node instead of one
//     function with a block per node: wazero's SSA passes grow with the
//     square of nested blocks, while a call costs nanoseconds. String
//     constants in a hash table in a data segment, looked up once per
//     string attribute while decoding, instead of inline comparisons (see
//     strtable.go). decide stores the decoded attributes in memory for the
//     node functions, which compare integers only: an integer attribute
//     with its presence bit, a string attribute as the index of its value
//     among the tree's constants (64 indices at a time for an enum), the
//     tags as a bit set.
//
//   - Tested against each other. A differential test and fuzz target
//     (FuzzCompiledMatchesEvaluate) build random valid trees over every key
//     and limit type, and random, sometimes corrupted, inputs; the compiled
//     module, run in wazero, must answer exactly what the decoder and
//     Evaluate answer.
package rules
