def portal(request):
    return {"portal_name": "Model API balance portal"}
