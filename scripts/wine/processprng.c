/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's standard
 * library (inside wgpu-native) takes its random numbers from ProcessPrng
 * there, which Windows 10 and later have. Built by scripts/wine-check.sh
 * and placed beside bt.exe for the test only; never shipped. */
#include <windows.h>

/* RtlGenRandom, exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
	while (length > 0) {
		ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}
