"""placeholder"""
def generate_kv(*a, **k):
    raise NotImplementedError
