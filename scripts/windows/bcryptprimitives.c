/*
 * Minimal bcryptprimitives.dll for Wine 8, which has none.
 *
 * Rust's std (1.78 and later) gets its random bytes (HashMap seeds, ...) from
 * ProcessPrng in bcryptprimitives.dll, so on Wine 8 every Rust .exe fails to start with
 * a missing import. scripts/windows-check.sh builds this file with mingw-w64 and copies
 * the DLL into its own Wine prefix only; nothing here is shipped or used on Windows.
 *
 * ProcessPrng is documented to always succeed, so we forward to RtlGenRandom
 * (advapi32!SystemFunction036, which Wine implements) in ULONG-sized chunks and only
 * report failure if Wine's generator itself fails.
 */
#include <windows.h>

BOOLEAN NTAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
