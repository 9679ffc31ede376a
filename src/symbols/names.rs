//! How resolved names are shown and read: WinDbg's short spelling of a function (no
//! argument list), and which functions are the allocator's rather than the caller's.

/// The function without its argument list and trailing qualifiers, as WinDbg prints a
/// frame (`JsonWriter::Grow(unsigned __int64)` → `JsonWriter::Grow`,
/// `Vector<unsigned int>::PushBack(unsigned int const &)` → `Vector<unsigned int>::PushBack`,
/// `Functor::operator()(int) const` → `Functor::operator()`). A name without an
/// argument list is returned as it is.
pub fn short_name(function: &str) -> &str {
    let mut s = function.trim_end();
    // Trailing qualifiers after the argument list.
    loop {
        let before = s;
        for q in [" const", " volatile", " &&", " &", " __ptr64", " noexcept"] {
            if let Some(t) = s.strip_suffix(q) {
                s = t.trim_end();
            }
        }
        if s == before {
            break;
        }
    }
    if !s.ends_with(')') {
        return function;
    }
    // The '(' that opens the last top-level parenthesized group.
    let b = s.as_bytes();
    let mut depth = 0i32;
    let mut open = None;
    for i in (0..b.len()).rev() {
        match b[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    open = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    match open {
        Some(i) if i > 0 => s[..i].trim_end(),
        _ => function,
    }
}

/// Functions whose frames belong to the allocator, not to the code that asked for
/// memory: the C runtime's allocation functions, `operator new`, the Windows heap and
/// memory APIs, the allocation helpers of the C++ standard library, and a program's own
/// wrappers named like them (`xrealloc`, `heap_realloc`, `PyMem_Realloc`). Patterns are
/// matched case-insensitively against the short name (see [`short_name`]); `*` matches
/// any run of characters. docs/symbols.md lists them.
pub const ALLOCATOR_FUNCTIONS: &[&str] = &[
    "*malloc*",
    "*calloc*",
    "*realloc*",
    "*alloca",
    "free",
    "_free_base",
    "_free_dbg",
    "_aligned_free",
    "_expand",
    "_msize",
    "operator new",
    "operator new[]",
    "operator delete",
    "operator delete[]",
    "*HeapAlloc",
    "*HeapReAlloc",
    "*HeapFree",
    "RtlAllocateHeap",
    "RtlReAllocateHeap",
    "RtlFreeHeap",
    "LocalAlloc",
    "LocalReAlloc",
    "GlobalAlloc",
    "GlobalReAlloc",
    "CoTaskMemAlloc",
    "CoTaskMemRealloc",
    "SysAllocString*",
    "SysReAllocString*",
    "std::allocator<*>::allocate",
    "std::_Allocate*",
    "std::_Default_allocate_traits::_Allocate",
    "std::_Allocate_manually_vector_aligned*",
    "std::_Allocate_at_least_helper*",
];

/// Matches `name` against a pattern of [`ALLOCATOR_FUNCTIONS`]' syntax.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    // Iterative wildcard matching with backtracking to the last '*'.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Which functions count as the allocator's: the built-in list plus the user's
/// (`--allocator PATTERN`).
#[derive(Debug, Clone, Default)]
pub struct AllocatorFunctions {
    extra: Vec<String>,
}

impl AllocatorFunctions {
    pub fn new(extra: &[String]) -> AllocatorFunctions {
        AllocatorFunctions {
            extra: extra.to_vec(),
        }
    }

    /// True when `function` (full or short name) is an allocator function.
    pub fn contains(&self, function: &str) -> bool {
        let short = short_name(function);
        ALLOCATOR_FUNCTIONS
            .iter()
            .copied()
            .chain(self.extra.iter().map(String::as_str))
            .any(|p| glob_match(p, short))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_the_argument_list() {
        for (full, short) in [
            ("JsonWriter::Grow(unsigned __int64)", "JsonWriter::Grow"),
            (
                "Vector<unsigned int>::PushBack(unsigned int const &)",
                "Vector<unsigned int>::PushBack",
            ),
            ("Functor::operator()(int) const", "Functor::operator()"),
            ("heapdemo_run", "heapdemo_run"),
            ("<unknown>", "<unknown>"),
            (
                "heapdemo_init(void * (*)(void *, unsigned __int64))",
                "heapdemo_init",
            ),
            ("f()", "f"),
            ("(anonymous namespace)::g(int)", "(anonymous namespace)::g"),
            ("()", "()"),
        ] {
            assert_eq!(short_name(full), short, "{full}");
        }
    }

    #[test]
    fn allocator_functions() {
        let a = AllocatorFunctions::new(&["MyPool::Take".into()]);
        for yes in [
            "heap_realloc(void *, unsigned __int64)",
            "malloc",
            "_realloc_base",
            "operator new(unsigned __int64)",
            "std::allocator<int>::allocate(unsigned __int64)",
            "PyMem_Realloc",
            "RtlReAllocateHeap",
            "MyPool::Take(int)",
            "mypool::take",
        ] {
            assert!(a.contains(yes), "{yes}");
        }
        for no in [
            "JsonWriter::Grow(unsigned __int64)",
            "StringBuilder::Append(char const *, unsigned __int64)",
            "Report::Save(char const *)",
            "freeze",
            "operator newline",
        ] {
            assert!(!a.contains(no), "{no}");
        }
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("*", ""));
    }
}
